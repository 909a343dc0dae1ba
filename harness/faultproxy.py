"""A fault-injecting HTTP proxy in front of a real OpenAI-compatible server, for integration tests.

:class:`FaultInjectingProxy` listens on 127.0.0.1 and forwards every request to ``upstream``,
except that a deterministic fraction of the requests on ``only_paths`` get a fault instead:

- ``"429"``: a 429 reply with a JSON error body and ``Retry-After: 0``;
- ``"500"``: a 500 reply with a JSON error body (OpenAI's shape; Anthropic's on ``/messages``);
- ``"timeout"``: the request is read, then the connection is held open without an answer for
  ``hang_s`` seconds (or until :meth:`~FaultInjectingProxy.stop`) and closed. The client's
  timeout must be shorter than ``hang_s`` to see a timeout rather than a dropped connection.

A faulted request is never forwarded, so the upstream does not see it and nothing is
double-counted. Which requests fault: the k-th request on ``only_paths`` (k = 0, 1, ...,
in arrival order) faults when ``rng.random() < fault_rate``, with
``rng = random.Random(f"{seed}:{k}")``, and its kind is then ``rng.choice(kinds)``. Other paths
(``GET /v1/models``...) are always forwarded and do not advance k, so a health poll does not
shift the fault pattern. Concurrent requests are numbered in the order they arrive.

Forwarding is buffered: the whole upstream reply is read, then relayed with its status and
headers. That suits non-streaming JSON; a streamed (SSE) reply arrives only once complete.
Request bodies need a ``Content-Length`` (chunked uploads are not supported).

Example:
    >>> import urllib.error, urllib.request
    >>> proxy = FaultInjectingProxy("http://127.0.0.1:9/v1", fault_rate=1.0, kinds=("500",))
    >>> with proxy:
    ...     request = urllib.request.Request(proxy.base_url + "/chat/completions", data=b"{}")
    ...     try:
    ...         urllib.request.urlopen(request, timeout=5)
    ...     except urllib.error.HTTPError as error:
    ...         print(error.code, proxy.stats.injected)
    500 {'500': 1}
    >>> proxy.base_url.startswith("http://127.0.0.1:") and proxy.base_url.endswith("/v1")
    True
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["FAULT_KINDS", "FaultInjectingProxy", "FaultStats"]

FAULT_KINDS = ("429", "500", "timeout")
FORWARD_TIMEOUT_S = 600.0
# Hop-by-hop headers belong to one connection, not the message; lengths are recomputed, and
# Accept-Encoding is dropped so that the upstream answers uncompressed.
_SKIP_REQUEST = {"host", "content-length", "connection", "keep-alive", "proxy-connection"}
_SKIP_REQUEST |= {"te", "trailer", "transfer-encoding", "upgrade", "accept-encoding"}
_SKIP_REPLY = {"content-length", "connection", "keep-alive", "transfer-encoding", "date", "server"}
# No environment proxies (HTTP_PROXY...): the upstream is a local server, reached directly.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class FaultStats:
    """Counters of one proxy, updated under a lock; safe to read while the proxy runs.

    Attributes:
        requests: Requests received, on any path.
        forwarded: Requests passed upstream (reached or not).
        injected: Faults injected, per kind ("429", "500", "timeout").
        in_flight: Requests being handled now.
        max_in_flight: The most requests handled at once (faulted or not).
        log: One ``(request number, path, outcome)`` per finished request, in finishing order;
            the number counts all requests from 0 in arrival order, and the outcome is ``"ok"``
            (forwarded, whatever the upstream answered), ``"502"`` (upstream unreachable) or the
            fault kind.
    """

    requests: int = 0
    forwarded: int = 0
    injected: dict[str, int] = field(default_factory=dict)
    in_flight: int = 0
    max_in_flight: int = 0
    log: list[tuple[int, str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)


class FaultInjectingProxy:
    """Forward HTTP requests to ``upstream``, injecting faults on a deterministic fraction.

    Args:
        upstream: Base URL of the real server, e.g. ``"http://127.0.0.1:8080/v1"``. The proxy
            serves the same path prefix, so ``proxy.base_url`` replaces it as a drop-in.
        fault_rate: Probability in [0, 1] that a request on ``only_paths`` faults.
        kinds: The fault kinds to draw from, a non-empty subset of ``FAULT_KINDS``.
        seed: Seeds the per-request draws (see the module docstring).
        hang_s: How long a ``"timeout"`` fault holds the connection before closing it.
        port: Port to listen on; None picks a free one at :meth:`start`.
        only_paths: Request paths (without query) that may fault; others are always forwarded.

    Raises:
        ValueError: On a bad argument, with one line naming it.
    """

    def __init__(
        self,
        upstream: str,
        fault_rate: float = 0.2,
        kinds: Sequence[str] = FAULT_KINDS,
        seed: int = 0,
        hang_s: float = 30.0,
        port: int | None = None,
        only_paths: Sequence[str] = ("/v1/chat/completions", "/v1/messages"),
    ) -> None:
        parsed = urllib.parse.urlsplit(upstream)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"upstream must be an http(s) base URL, got {upstream!r}")
        if not 0.0 <= fault_rate <= 1.0:  # also rejects NaN
            raise ValueError(f"fault_rate must be in [0, 1], got {fault_rate!r}")
        unknown = sorted(set(kinds) - set(FAULT_KINDS))
        if unknown or not kinds:
            raise ValueError(
                f"kinds must be a non-empty subset of {FAULT_KINDS}, got {list(kinds)}"
            )
        if not (hang_s >= 0.0 and math.isfinite(hang_s)):
            raise ValueError(f"hang_s must be a finite number of seconds >= 0, got {hang_s!r}")
        self.upstream = upstream.rstrip("/")
        self._origin = f"{parsed.scheme}://{parsed.netloc}"
        self._prefix = parsed.path.rstrip("/")
        self.fault_rate = fault_rate
        self.kinds = tuple(kinds)
        self.seed = seed
        self.hang_s = hang_s
        self.port = port
        self.only_paths = frozenset(only_paths)
        self.stats = FaultStats()
        self._faultable_seen = 0
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` plus the upstream's path prefix (e.g. ``/v1``)."""
        if self.port is None:
            raise RuntimeError("the proxy picks its port at start(); call start() first")
        return f"http://127.0.0.1:{self.port}{self._prefix}"

    def fault_for(self, faultable_index: int) -> str | None:
        """The fault kind for the k-th request on ``only_paths``, or None to forward it."""
        rng = random.Random(f"{self.seed}:{faultable_index}")
        return rng.choice(self.kinds) if rng.random() < self.fault_rate else None

    def start(self) -> None:
        """Listen on 127.0.0.1 and serve from a daemon thread."""
        if self._server is not None:
            raise RuntimeError("the proxy is already running")
        self._stopping.clear()
        server = ThreadingHTTPServer(("127.0.0.1", self.port or 0), _make_handler(self))
        # Daemon handler threads: server_close() must not join a handler hanging on a fault.
        server.daemon_threads = True
        self.port = int(server.server_address[1])
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving; hanging ``"timeout"`` handlers wake and close their connections."""
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        self._server = None
        self._thread = None

    def __enter__(self) -> FaultInjectingProxy:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _begin(self, path: str) -> tuple[int, str | None]:
        """Count a new request; return its number and the fault to inject, if any."""
        stats = self.stats
        with stats.lock:
            number = stats.requests
            stats.requests += 1
            stats.in_flight += 1
            stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
            fault = None
            if path in self.only_paths:
                fault = self.fault_for(self._faultable_seen)
                self._faultable_seen += 1
            if fault is not None:
                stats.injected[fault] = stats.injected.get(fault, 0) + 1
            else:
                stats.forwarded += 1
        return number, fault

    def _release(self) -> None:
        # A request leaves the count when its reply starts: the client may send its next one
        # the moment the reply arrives, before this handler thread has finished its bookkeeping.
        with self.stats.lock:
            self.stats.in_flight -= 1

    def _finish(self, number: int, path: str, outcome: str, released: bool) -> None:
        with self.stats.lock:
            if not released:
                self.stats.in_flight -= 1
            self.stats.log.append((number, path, outcome))


def _error_body(path: str, status: int, message: str) -> bytes:
    """An error body in the shape the client of ``path`` parses (Anthropic or OpenAI)."""
    if path.endswith("/messages"):
        kind = "rate_limit_error" if status == 429 else "api_error"
        return json.dumps({"type": "error", "error": {"type": kind, "message": message}}).encode()
    kind = "rate_limit_exceeded" if status == 429 else "server_error"
    error = {"message": message, "type": kind, "param": None, "code": kind}
    return json.dumps({"error": error}).encode()


def _make_handler(proxy: FaultInjectingProxy) -> type[BaseHTTPRequestHandler]:
    """A request handler class bound to ``proxy`` (http.server instantiates it per request)."""

    class Handler(BaseHTTPRequestHandler):
        released = False  # whether this request has left the in-flight count

        def log_message(self, format: str, *args: object) -> None:
            pass  # the stats log records every request; stderr noise would drown test output

        def _handle(self) -> None:
            path = urllib.parse.urlsplit(self.path).path
            # Read the body first, even for a fault: the client must finish sending before it
            # waits for a reply, or a "timeout" fault would look like a stalled upload.
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            number, fault = proxy._begin(path)
            self.released = False
            outcome = fault or "ok"
            try:
                if fault == "timeout":
                    proxy._stopping.wait(proxy.hang_s)
                    self.close_connection = True  # closed with no reply at all
                elif fault is not None:
                    message = f"injected fault {fault} (harness.faultproxy, request {number})"
                    extra = {"Retry-After": "0"} if fault == "429" else {}
                    headers = {"Content-Type": "application/json", **extra}
                    self._reply(int(fault), headers, _error_body(path, int(fault), message))
                else:
                    outcome = self._forward(path, body)
            finally:
                proxy._finish(number, path, outcome, self.released)

        do_GET = do_POST = _handle

        def _forward(self, path: str, body: bytes) -> str:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _SKIP_REQUEST}
            request = urllib.request.Request(
                proxy._origin + self.path,
                data=body if body or self.command == "POST" else None,
                headers=headers,
                method=self.command,
            )
            try:
                with _OPENER.open(request, timeout=FORWARD_TIMEOUT_S) as reply:
                    status, reply_headers, reply_body = reply.status, reply.headers, reply.read()
            except urllib.error.HTTPError as error:  # an upstream error status is relayed as is
                status, reply_headers, reply_body = error.code, error.headers, error.read()
            except OSError as error:  # URLError, refused, reset, timed out
                message = f"harness.faultproxy: upstream {proxy.upstream} unreachable: {error}"
                json_type = {"Content-Type": "application/json"}
                self._reply(502, json_type, _error_body(path, 502, message))
                return "502"
            self._reply(status, dict(reply_headers.items()), reply_body)
            return "ok"

        def _reply(self, status: int, headers: dict[str, str], body: bytes) -> None:
            if not self.released:
                self.released = True
                proxy._release()
            # A client that gave up (its own timeout) is not an error of the proxy's.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.send_response(status)
                for name, value in headers.items():
                    if name.lower() not in _SKIP_REPLY:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

    return Handler
