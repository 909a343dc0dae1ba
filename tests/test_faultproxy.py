"""The fault-injecting proxy in front of a small recording upstream, with urllib and openai."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import openai
import pytest

from harness.faultproxy import FaultInjectingProxy

COMPLETION = {
    "id": "chatcmpl-test",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "test-model",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "4"},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
}
MODELS = {"object": "list", "data": [{"id": "test-model", "object": "model", "owned_by": "me"}]}
REQUEST = json.dumps({"model": "test-model", "messages": [{"role": "user", "content": "2+2?"}]})


class _RecordingUpstream:
    """A stand-in OpenAI server: counts requests and how many it handles at once."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.headers: list[dict[str, str]] = []
        self.bodies: list[bytes] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                upstream._answer(self, MODELS if self.path == "/v1/models" else None)

            def do_POST(self) -> None:
                ok = self.path == "/v1/chat/completions"
                upstream._answer(self, COMPLETION if ok else None)

        return Handler

    def _answer(self, handler: BaseHTTPRequestHandler, payload: dict | None) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        with self._lock:
            self.requests += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.headers.append(dict(handler.headers.items()))
            self.bodies.append(body)
        time.sleep(self.delay_s)
        reply = json.dumps(payload if payload is not None else {"error": "no route"}).encode()
        handler.send_response(200 if payload is not None else 404)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(reply)))
        handler.end_headers()
        handler.wfile.write(reply)
        with self._lock:
            self.in_flight -= 1

    def __enter__(self) -> _RecordingUpstream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def upstream():
    with _RecordingUpstream() as running:
        yield running


def _post(base_url: str, timeout: float = 5.0, path: str = "/chat/completions"):
    """POST a chat request; return (status, headers, body), also for an error status."""
    request = urllib.request.Request(
        base_url + path,
        data=REQUEST.encode(),
        headers={"Content-Type": "application/json", "Authorization": "Bearer sk-test"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return reply.status, reply.headers, reply.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def _post_ignoring_drops(base_url: str) -> None:
    # A "timeout" fault with hang_s=0 closes the connection without a reply.
    with contextlib.suppress(OSError):
        _post(base_url)


def test_fault_rate_zero_forwards_everything_unchanged(upstream):
    with FaultInjectingProxy(upstream.base_url, fault_rate=0.0) as proxy:
        assert proxy.base_url.endswith("/v1") and proxy.base_url != upstream.base_url
        replies = [_post(proxy.base_url) for _ in range(5)]
    for status, headers, body in replies:
        assert status == 200
        assert headers["Content-Type"] == "application/json"
        assert json.loads(body) == COMPLETION
    assert upstream.requests == 5
    assert upstream.bodies[0] == REQUEST.encode()
    assert upstream.headers[0]["Authorization"] == "Bearer sk-test"
    assert upstream.headers[0]["Content-Type"] == "application/json"
    assert proxy.stats.requests == proxy.stats.forwarded == 5
    assert proxy.stats.injected == {}
    assert [outcome for _, _, outcome in proxy.stats.log] == ["ok"] * 5


@pytest.mark.parametrize("kind", ["429", "500"])
def test_error_faults_reply_without_forwarding(upstream, kind):
    with FaultInjectingProxy(upstream.base_url, fault_rate=1.0, kinds=(kind,)) as proxy:
        status, headers, body = _post(proxy.base_url)
    assert status == int(kind)
    assert headers["Content-Type"] == "application/json"
    assert "injected fault" in json.loads(body)["error"]["message"]
    if kind == "429":
        assert headers["Retry-After"] == "0"
    assert upstream.requests == 0
    assert proxy.stats.injected == {kind: 1} and proxy.stats.forwarded == 0
    assert proxy.stats.log == [(0, "/v1/chat/completions", kind)]


def test_timeout_fault_hangs_and_stop_returns_promptly(upstream):
    proxy = FaultInjectingProxy(upstream.base_url, fault_rate=1.0, kinds=("timeout",), hang_s=30)
    proxy.start()
    try:
        with pytest.raises(TimeoutError):
            _post(proxy.base_url, timeout=0.5)
        # A second request hangs while stop() is called: stop must not wait for it.
        hanging = threading.Thread(target=_post_ignoring_drops, args=(proxy.base_url,))
        hanging.start()
        deadline = time.monotonic() + 5
        while proxy.stats.requests < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proxy.stats.in_flight >= 1
    finally:
        started = time.monotonic()
        proxy.stop()
        assert time.monotonic() - started < 2.0
    hanging.join(timeout=2.0)  # the woken handler closed the connection
    assert not hanging.is_alive()
    assert upstream.requests == 0
    assert proxy.stats.injected == {"timeout": 2}


def _run_50(upstream_url: str, seed: int) -> FaultInjectingProxy:
    proxy = FaultInjectingProxy(upstream_url, fault_rate=0.2, seed=seed, hang_s=0.0)
    with proxy:
        for _ in range(50):
            _post_ignoring_drops(proxy.base_url)
    return proxy


def test_fault_rate_injects_a_deterministic_fraction(upstream):
    first, again, other = (_run_50(upstream.base_url, seed) for seed in (7, 7, 8))
    faults = sum(first.stats.injected.values())
    assert 4 <= faults <= 17  # about a fifth of 50
    assert first.stats.forwarded == 50 - faults
    assert first.stats.log == again.stats.log
    assert first.stats.log != other.stats.log
    assert [outcome != "ok" for _, _, outcome in first.stats.log] == [
        first.fault_for(k) is not None for k in range(50)
    ]
    forwarded_by_all = sum(proxy.stats.forwarded for proxy in (first, again, other))
    assert upstream.requests == forwarded_by_all


def test_max_in_flight_counts_concurrent_requests():
    with _RecordingUpstream(delay_s=0.3) as slow, FaultInjectingProxy(slow.base_url, 0.0) as proxy:
        threads = [threading.Thread(target=_post, args=(proxy.base_url,)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=5)
    assert proxy.stats.max_in_flight >= 2
    assert slow.max_in_flight >= 2
    assert proxy.stats.in_flight == 0 and proxy.stats.forwarded == 4


def test_other_paths_are_never_faulted(upstream):
    with FaultInjectingProxy(upstream.base_url, fault_rate=1.0, kinds=("500",)) as proxy:
        with urllib.request.urlopen(proxy.base_url + "/models", timeout=5) as reply:
            assert reply.status == 200 and json.loads(reply.read()) == MODELS
        status, _, _ = _post(proxy.base_url)
    assert status == 500
    assert proxy.stats.log == [(0, "/v1/models", "ok"), (1, "/v1/chat/completions", "500")]
    assert upstream.requests == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fault_rate": 1.5}, "fault_rate must be in"),
        ({"fault_rate": float("nan")}, "fault_rate must be in"),
        ({"kinds": ("503",)}, "kinds must be a non-empty subset"),
        ({"kinds": ()}, "kinds must be a non-empty subset"),
        ({"hang_s": -1.0}, "hang_s must be"),
    ],
)
def test_bad_arguments_raise_one_line(kwargs, message):
    with pytest.raises(ValueError, match=message) as error:
        FaultInjectingProxy("http://127.0.0.1:8080/v1", **kwargs)
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="upstream must be"):
        FaultInjectingProxy("127.0.0.1:8080/v1")


def _chat(base_url: str) -> str | None:
    client = openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0, timeout=0.5)
    reply = client.chat.completions.create(
        model="test-model", messages=[{"role": "user", "content": "2+2?"}]
    )
    return reply.choices[0].message.content


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("429", openai.RateLimitError),
        ("500", openai.InternalServerError),
        ("timeout", openai.APITimeoutError),
    ],
)
def test_openai_client_sees_each_fault_as_its_error(upstream, kind, error):
    with FaultInjectingProxy(upstream.base_url, fault_rate=0.0) as proxy:
        assert _chat(proxy.base_url) == "4"
    faulty = FaultInjectingProxy(upstream.base_url, fault_rate=1.0, kinds=(kind,), hang_s=10)
    with faulty as proxy, pytest.raises(error):
        _chat(proxy.base_url)
    assert upstream.requests == 1  # only the unfaulted call
