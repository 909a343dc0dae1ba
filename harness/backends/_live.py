"""The ``live`` and ``replay`` backends: real LLM calls through the shared call cache.

``live`` sends each node's prompts to the model's provider (the pool's ``providers`` and
``serve`` sections, :mod:`harness.live.providers`): every question of the batch at once,
concurrently on one asyncio loop, within the provider's limits (:mod:`harness.live._clients`).
The executor hands it one node at a time in topological order, so a node's calls start only
when its inputs' answers are in.

Every reply goes into the call cache (:mod:`harness.cache`) under a key of what changes the
output: the provider's pool name, the model id, the messages, the generation parameters and the
*sample* ``seed/epoch/position``. The sample makes ``k`` nodes with the same prompt in one graph
(``position`` is the node's canonical position) and ``k`` repetitions of an evaluation
(``epoch``) ``k`` separate calls, while the same node of the same graph on the same question,
seed and epoch is one call, as on ``sim`` (common random numbers). A cache hit is marked in the
trace and charged exactly as the call it replays: its recorded tokens, latency and dollars, so
cached and uncached studies compare equal. The budget (question evaluations) never depends on
the cache.

``replay`` is ``live`` without a network: every call must be in the cache; the first missing
one stops the study with one line (:class:`~harness.errors.ReplayMiss`) naming it.

A corrupt cache row is never served: it is reported as a ``cache_corrupt`` event and treated as
a miss. Failed attempts (429, 5xx, timeouts) are ``call_retry`` / ``call_failed`` events that
the study writes into its trace (:meth:`Backend.drain_events`).
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np

from harness.backends._base import Answers, Backend, Batch, EvalContext, NodeCall
from harness.cache import CacheEntry, CallCache, call_key
from harness.errors import CallError, ReplayMiss
from harness.live._clients import Completion, ProviderClient
from harness.live.providers import Route, api_key, live_routes
from harness.pool import ModelSpec, Pool
from harness.tasks import Task

__all__ = ["LiveBackend", "ReplayBackend"]

Messages = list[dict[str, str]]
T = TypeVar("T")

# Generation parameters that change a reply, hence part of the cache key. Timeouts, retries and
# limits change only when a reply arrives.
_KEYED = ("temperature", "top_p", "max_tokens", "stop")


class _Loop:
    """An asyncio loop on a daemon thread: works whether or not the caller runs a loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()


class LiveBackend(Backend):
    """Real LLM calls, cached (see the module docstring).

    Args:
        cache: the call cache's file (default ``$HARNESS_CALL_CACHE``, else ``calls.sqlite`` in
            the harness cache folder).

    Attributes:
        calls_made: attempts sent to providers (retries included).
        cache_hits: calls answered from the cache.
    """

    name: ClassVar[str] = "live"
    produces: ClassVar[str] = "text"
    #: Whether the backend may call providers (``replay`` may not).
    online: ClassVar[bool] = True

    def __init__(self, cache: Path | str | None = None) -> None:
        super().__init__()
        self.cache_path = cache
        self.cache: CallCache | None = None
        self.routes: dict[str, Route] = {}
        self.calls_made = 0
        self.cache_hits = 0
        self._events: list[dict[str, Any]] = []
        self._clients: dict[str, ProviderClient] = {}
        self._keys: dict[str, str | None] = {}
        self._loop: _Loop | None = None
        # Jitter only (when a retry happens), never an answer: a fixed seed keeps runs alike.
        self._rng = random.Random(0)

    # ----- set-up ----------------------------------------------------------------------------

    def bind(self, task: Task, pool: Pool) -> None:
        """Check every route, key and the cache before any call.

        Raises:
            ConfigError: a pool that says nothing about how to reach a model, an unknown
                provider, a malformed URL, a missing key variable, or a corrupt cache file.
        """
        super().bind(task, pool)
        self.routes = live_routes(pool, check_keys=self.online)
        if self.online:
            self._keys = {r.provider.name: api_key(r.provider) for r in self.routes.values()}
        if self.cache is None:
            self.cache = CallCache(self.cache_path)

    def describe(self) -> dict[str, Any]:
        """Name, cache file and each model's provider, model id and generation parameters."""
        return {
            "name": self.name,
            "cache": str(self.cache.path) if self.cache is not None else None,
            "routes": {
                model: {
                    "provider": route.provider.name,
                    "type": route.provider.type,
                    "model_id": route.model_id,
                    "generation": dict(route.generation),
                }
                for model, route in self.routes.items()
            },
        }

    def drain_events(self) -> list[dict[str, Any]]:
        """Failed attempts and corrupt cache rows since the last drain."""
        # Emptied in place: the provider clients hold this list's append method.
        events = list(self._events)
        self._events.clear()
        return events

    def close(self) -> None:
        """Close provider connections and the cache."""
        if self._loop is not None:
            loop = self._loop
            for client in self._clients.values():
                loop.run(client.aclose())
            loop.close()
            self._loop = None
            self._clients = {}
        if self.cache is not None:
            self.cache.close()
            self.cache = None

    # ----- answering -------------------------------------------------------------------------

    def answer(
        self,
        call: NodeCall,
        batch: Batch,
        inputs: Sequence[Answers],
        context: EvalContext,
        prompts: Callable[[], list[Messages]],
    ) -> Answers:
        """Every question's reply for one node: from the cache, else from the provider."""
        assert self.cache is not None, "bind() first"
        route = self.routes[call.model.name]
        params = {k: route.generation.get(k) for k in _KEYED}
        sample = f"{context.seed}/{context.epoch}/{call.position}"
        messages = prompts()
        keys = [call_key(route.provider.name, route.model_id, m, params, sample) for m in messages]
        found = self.cache.get_many(keys)
        self._report_corrupt()
        entries: list[CacheEntry | None] = [found.get(key) for key in keys]
        cached = np.array([e is not None for e in entries], dtype=bool)
        self.cache_hits += int(cached.sum())
        missing = [i for i, e in enumerate(entries) if e is None]
        if missing:
            where = [
                f"model {call.model.name} node {_node(call)} question {batch.ids[i]}"
                for i in missing
            ]
            if not self.online:
                raise ReplayMiss(
                    f"replay: {len(missing)} call(s) not in the call cache {self.cache.path}, "
                    f"first: {where[0]}, seed {context.seed} epoch {context.epoch} "
                    f"(record them with --backend live)"
                )
            made = self._call_all(
                route, [messages[i] for i in missing], params, keys, missing, where
            )
            for i, entry in zip(missing, made, strict=True):
                entries[i] = entry
        done = [e for e in entries if e is not None]
        assert len(done) == len(entries)
        return Answers(
            texts=tuple(e.reply for e in done),
            prompt_tokens=np.array([e.prompt_tokens for e in done], dtype=np.int64),
            output_tokens=np.array([e.output_tokens for e in done], dtype=np.int64),
            latency_s=np.array([e.latency_s for e in done], dtype=np.float64),
            cached=cached,
            dollars=None
            if any(e.dollars is None for e in done)
            else np.array([e.dollars for e in done], dtype=np.float64),
        )

    def _call_all(
        self,
        route: Route,
        messages: Sequence[Messages],
        params: dict[str, Any],
        all_keys: Sequence[str],
        positions: Sequence[int],
        where: Sequence[str],
    ) -> list[CacheEntry]:
        """Make the missing calls concurrently; cache every success, even if another fails."""
        assert self.cache is not None and self.pool is not None
        if self._loop is None:
            self._loop = _Loop()
        client = self._client(route)
        keys = [all_keys[i] for i in positions]
        send_seed = bool(route.generation.get("seed"))

        async def one(i: int) -> Completion:
            # A per-sample seed from the key: a server that honours it answers a repeated call
            # the same way, so a live rerun without the cache can be compared too.
            seed = int(keys[i][:8], 16) & 0x7FFFFFFF if send_seed else None
            return await client.complete(route, messages[i], params, seed, where[i])

        async def everything() -> list[Completion | BaseException]:
            return await asyncio.gather(*(one(i) for i in range(len(keys))), return_exceptions=True)

        before = client.calls
        results = self._loop.run(everything())
        self.calls_made += client.calls - before
        spec = self.pool.model(route.model)
        rows, entries, failure = [], [], None
        for key, result in zip(keys, results, strict=True):
            if isinstance(result, BaseException):
                failure = failure or result
                continue
            entry = CacheEntry(
                reply=result.text,
                prompt_tokens=result.prompt_tokens,
                output_tokens=result.output_tokens,
                latency_s=result.latency_s,
                dollars=_dollars(spec, result.prompt_tokens, result.output_tokens),
            )
            rows.append((key, route.provider.name, route.model_id, entry))
            entries.append(entry)
        self.cache.put_many(rows)
        if failure is not None:
            if isinstance(failure, CallError):
                raise failure
            raise CallError(f"{route.provider.name} ({route.model_id}): {failure}") from failure
        return entries

    def _client(self, route: Route) -> ProviderClient:
        name = route.provider.name
        if name not in self._clients:
            self._clients[name] = ProviderClient(
                route.provider, self._keys.get(name), self._events.append, self._rng
            )
        return self._clients[name]

    def _report_corrupt(self) -> None:
        assert self.cache is not None
        for key, reason in self.cache.corrupt:
            self._events.append({"kind": "cache_corrupt", "key": key, "error": reason})
        self.cache.corrupt.clear()

    @property
    def peak_in_flight(self) -> dict[str, int]:
        """Per provider, the most calls that were in flight at once."""
        return {name: c.limiter.peak_in_flight for name, c in self._clients.items()}


class ReplayBackend(LiveBackend):
    """Recorded calls only: zero network calls; a missing call stops the study (one line)."""

    name: ClassVar[str] = "replay"
    online: ClassVar[bool] = False


def _node(call: NodeCall) -> str:
    return "output" if call.role == "output" else str(call.node_id)


def _dollars(spec: ModelSpec, prompt_tokens: int, output_tokens: int) -> float | None:
    if spec.price_in is None or spec.price_out is None:
        return None
    return (prompt_tokens * spec.price_in + output_tokens * spec.price_out) / 1e6
