"""Overhead of the ``live`` backend over a bare asyncio client, and the speed of ``replay``.

Run: ``python benchmarks/live_overhead.py [--calls 40] [--rounds 3] [--base-url URL]``.

Against one local llama.cpp server (started here with SmolLM2-135M-Instruct unless
``--base-url`` names a running one that serves ``smollm2-a``), side by side in one run:

- **bare**: ``openai.AsyncOpenAI`` with its retries off, ``asyncio.gather`` under a semaphore of
  the provider's concurrency, making the calls of one node on ``--calls`` GSM8K questions;
- **harness**: the same calls through :class:`harness.backends._live.LiveBackend` (prompt
  building, cache keys and lookups, the provider's limiter, the retry wrapper, cache writes)
  with a fresh call cache each round, so that every call really goes to the server.

Both send the same messages, generation parameters and per-sample seeds, so the server does the
same work; rounds alternate bare and harness, and the best round of each is compared. The
per-call overhead is ``(harness - bare) / calls``; the target is under 5% of the bare time.

Then **replay**: the same node answered from a cache of ``--replay-calls`` recorded calls
(synthetic replies under the real keys), first at the backend (key, lookup, answers), then as
whole graph runs through the executor (prompts, scoring). Target: above 10,000 calls per second.
Figures, not assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.backends import Batch, EvalContext, NodeCall
from harness.backends._live import LiveBackend, ReplayBackend
from harness.cache import CacheEntry, call_key
from harness.executor import run_graph
from harness.graph import OUTPUT, Graph
from harness.localserver import LocalServer
from harness.pool import load_pool
from harness.tasks import Item, load_task

PARAMS: dict[str, Any] = {"temperature": 0.7, "top_p": 1.0, "max_tokens": 16, "stop": None}


def _call(pool: Any, model: str, position: int = 0) -> NodeCall:
    return NodeCall("bench", position, position, pool.model(model), "assistant", 1, (), 0, 0)


def _messages(task: Any, items: list[Item]) -> list[list[dict[str, str]]]:
    return [task.prompt("assistant", item.question) for item in items]


def _pool_file(folder: Path, base_url: str) -> Path:
    path = folder / "pool.yaml"
    path.write_text(
        "name: bench\nbase: local\n"
        f"providers:\n  llamacpp: {{type: openai, base_url: '{base_url}', concurrency: 2}}\n"
        "serve:\n  smollm2-a: {provider: llamacpp, model_id: smollm2-a}\n"
        "  smollm2-b: {provider: llamacpp, model_id: smollm2-b}\n"
        f"generation: {{temperature: {PARAMS['temperature']}, max_tokens: "
        f"{PARAMS['max_tokens']}, seed: true}}\n"
    )
    return path


def bare(base_url: str, messages: list[list[dict[str, str]]], seeds: list[int]) -> float:
    """Seconds for the calls with a bare asyncio ``openai`` client."""
    from openai import AsyncOpenAI

    async def everything() -> float:
        client = AsyncOpenAI(base_url=base_url, api_key="not-needed", max_retries=0, timeout=600)
        gate = asyncio.Semaphore(2)

        async def one(m: list[dict[str, str]], seed: int) -> str:
            async with gate:
                reply = await client.chat.completions.create(
                    model="smollm2-a",
                    messages=m,  # type: ignore[arg-type]
                    temperature=PARAMS["temperature"],
                    top_p=PARAMS["top_p"],
                    max_tokens=PARAMS["max_tokens"],
                    seed=seed,
                )
                return reply.choices[0].message.content or ""

        started = time.perf_counter()
        await asyncio.gather(*(one(m, s) for m, s in zip(messages, seeds, strict=True)))
        elapsed = time.perf_counter() - started
        await client.close()
        return elapsed

    return asyncio.run(everything())


def harness_round(pool_path: Path, task: Any, items: list[Item], folder: Path) -> float:
    """Seconds for the same calls through the live backend, with a fresh cache."""
    pool = load_pool(pool_path)
    backend = LiveBackend(cache=folder / f"round-{time.monotonic_ns()}.sqlite")
    backend.bind(task, pool)
    batch = Batch(tuple(items))
    try:
        started = time.perf_counter()
        backend.answer(
            _call(pool, "smollm2-a"), batch, [], EvalContext(0), lambda: _messages(task, items)
        )
        return time.perf_counter() - started
    finally:
        backend.close()


def seeds_of(task: Any, items: list[Item]) -> list[int]:
    """The per-sample seeds the live backend sends (derived from the cache keys)."""
    sample = "0/0/0"  # seed 0, epoch 0, position 0: what harness_round's call is
    keys = [call_key("llamacpp", "smollm2-a", m, PARAMS, sample) for m in _messages(task, items)]
    return [int(key[:8], 16) & 0x7FFFFFFF for key in keys]


def replay_speed(
    pool_path: Path, task: Any, items: list[Item], folder: Path
) -> tuple[float, float]:
    """Calls per second of replay: at the backend, and in whole graph runs."""
    pool = load_pool(pool_path)
    cache_path = folder / "replay.sqlite"
    graph = Graph.create(
        [(0, "a", "assistant"), (1, "b", "assistant")], [(0, OUTPUT), (1, OUTPUT)], "a"
    )
    batch = Batch(tuple(items))
    # Record every call the graph makes, with a synthetic reply, under the real keys.
    recorder = ReplayBackend(cache=cache_path)
    recorder.bind(task, pool)
    assert recorder.cache is not None
    rows = []
    epochs = 4

    def record(call: NodeCall, make: Callable[[], list[list[dict[str, str]]]], epoch: int) -> None:
        route = recorder.routes[call.model.name]
        params = {k: route.generation.get(k) for k in PARAMS}
        sample = f"0/{epoch}/{call.position}"
        for m, item in zip(make(), items, strict=True):
            key = call_key(route.provider.name, route.model_id, m, params, sample)
            entry = CacheEntry(f"The answer is {item.answer}.", 120, 16, 0.5, 0.0)
            rows.append((key, route.provider.name, route.model_id, entry))

    seen: list[NodeCall] = []

    class Recording(ReplayBackend):
        def answer(self, call, batch, inputs, context, prompts):  # type: ignore[no-untyped-def]
            seen.append(call)
            record(call, prompts, context.epoch)
            assert recorder.cache is not None
            recorder.cache.put_many(rows)
            rows.clear()
            return super().answer(call, batch, inputs, context, prompts)

    filler = Recording(cache=cache_path)
    filler.bind(task, pool)
    for epoch in range(epochs):
        run_graph(graph, batch, filler, task, pool, EvalContext(0, epoch))
    filler.close()
    recorder.close()

    replay = ReplayBackend(cache=cache_path)
    replay.bind(task, pool)
    first = seen[0]  # an assistant without inputs: its prompts are the question's alone
    messages = _messages(task, items)
    started = time.perf_counter()
    rounds = 0
    while time.perf_counter() - started < 2.0:
        for epoch in range(epochs):
            replay.answer(first, batch, [], EvalContext(0, epoch), lambda: messages)
        rounds += 1
    backend_rate = rounds * epochs * len(items) / (time.perf_counter() - started)
    started = time.perf_counter()
    runs = 0
    while time.perf_counter() - started < 2.0:
        for epoch in range(epochs):
            run_graph(graph, batch, replay, task, pool, EvalContext(0, epoch))
        runs += 1
    graph_rate = runs * epochs * len(items) * 3 / (time.perf_counter() - started)
    assert replay.calls_made == 0
    replay.close()
    return backend_rate, graph_rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=40, help="calls per round (default 40)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each (default 3)")
    parser.add_argument("--replay-calls", type=int, default=2000, help="questions for replay")
    parser.add_argument("--base-url", default=None, help="a running server (else one is started)")
    parser.add_argument("--data-dir", type=Path, default=None, help="data folder")
    args = parser.parse_args()
    task = load_task("gsm8k")
    data = task.load(data_dir=args.data_dir or os.environ.get("HARNESS_DATA_DIR"))
    items = list(data.search[: args.calls])
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        server = None
        base_url = args.base_url
        if base_url is None:
            server = LocalServer("smollm2", aliases=("smollm2-a", "smollm2-b"))
            server.start()
            base_url = server.base_url
        try:
            pool_path = _pool_file(folder, base_url)
            seeds = seeds_of(task, items)
            messages = _messages(task, items)
            bare(base_url, messages[:4], seeds[:4])  # warm the server and the model
            bare_times, harness_times = [], []
            for _ in range(args.rounds):
                bare_times.append(bare(base_url, messages, seeds))
                harness_times.append(harness_round(pool_path, task, items, folder))
            best_bare, best_harness = min(bare_times), min(harness_times)
            n = len(items)
            print(f"live: {n} calls per round, concurrency 2, max_tokens {PARAMS['max_tokens']}")
            print(f"  bare asyncio openai client: {n / best_bare:7.2f} calls/s ({best_bare:.2f} s)")
            print(
                f"  harness live backend:       {n / best_harness:7.2f} calls/s "
                f"({best_harness:.2f} s)"
            )
            overhead = (best_harness - best_bare) / n
            share = 100 * (best_harness - best_bare) / best_bare
            print(
                f"  overhead: {overhead * 1000:+.2f} ms per call ({share:+.1f}% of the bare time; "
                f"target under 5%)"
            )
            print(
                f"  rounds (s): bare {[round(t, 2) for t in bare_times]}, "
                f"harness {[round(t, 2) for t in harness_times]}"
            )
        finally:
            if server is not None:
                server.stop()
        replay_items = list(data.search[: args.replay_calls])
        backend_rate, graph_rate = replay_speed(
            _pool_file(folder, base_url), task, replay_items, folder
        )
        print(f"replay ({len(replay_items)} questions, zero network calls):")
        print(f"  backend: {backend_rate:,.0f} calls/s (target above 10,000)")
        print(f"  whole graph runs (prompts, replay, scoring): {graph_rate:,.0f} calls/s")


if __name__ == "__main__":
    main()
