"""Integration: the ``live`` and ``replay`` backends against a real local LLM server.

`python -m llama_cpp.server` serves SmolLM2-135M-Instruct under two aliases (the two-model pool
``tasks/pools/local.yaml``). A 3-node graph (two assistants, one of each model, into an output
node) runs on 5 GSM8K items live; the same study then replays from the call cache with the
server unreachable; a fault-injecting proxy in front of the server fails a fifth of the calls
with 429, 500 and timeouts, and the study still completes with every error in its trace.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from harness.faultproxy import FaultInjectingProxy
from harness.localserver import LocalServer, free_port
from harness.protocol import load_protocol
from harness.study import Bench
from harness.trace import read_trace

# One search evaluation of 5 questions and a 5-question held-out split: 15 calls each.
PROTOCOL = """\
name: live-smoke
question_evals: 5
batch_size: 5
budget_level: 12
max_nodes: 4
checkpoint_every: 5
heldout_size: 5
seeds: 1
pool: local
"""
GRAPH = {"method": "parallel", "options": {"model": "b", "width": 2, "output_model": "a"}}
CALLS = 2 * 15  # search and held-out; the final score reuses the checkpoint's (same graph)

POOL = """\
name: local-test
base: local
providers:
  llamacpp:
    type: openai
    base_url: ${{HARNESS_LOCAL_URL}}
    concurrency: 2
    timeout_s: {timeout}
    max_retries: 8
    backoff_s: 0.2
    max_backoff_s: 2
serve:
  smollm2-a: {{provider: llamacpp, model_id: smollm2-a}}
  smollm2-b: {{provider: llamacpp, model_id: smollm2-b}}
generation: {{temperature: 0.7, max_tokens: 24, seed: true}}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    with LocalServer("smollm2", log=log, aliases=("smollm2-a", "smollm2-b")) as running:
        yield running


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("live")
    (root / "protocol.yaml").write_text(PROTOCOL)
    # Generous for real calls on a loaded 2-core machine; the fault study needs a short one.
    (root / "pool.yaml").write_text(POOL.format(timeout=600))
    (root / "pool-faults.yaml").write_text(POOL.format(timeout=20))
    return root


def _study(files: Path, backend: str, cache: Path, out: Path, pool: str = "pool.yaml"):
    protocol = load_protocol(files / "protocol.yaml")
    bench = Bench("gsm8k", protocol, backend, pool=str(files / pool), cache=cache)
    try:
        result = bench.run(GRAPH["method"], GRAPH["options"], seed=0, out_dir=out)
    finally:
        made = bench.backend.calls_made  # type: ignore[attr-defined]
        peak = bench.backend.peak_in_flight  # type: ignore[attr-defined]
        bench.backend.close()
    return result, read_trace(out / "trace.jsonl"), made, peak


@pytest.fixture(scope="module")
def recorded(server, files, tmp_path_factory):
    # A proxy that injects no faults counts the calls in flight at the server, independently.
    with FaultInjectingProxy(server.base_url, fault_rate=0.0) as proxy:
        patch = pytest.MonkeyPatch()
        patch.setenv("HARNESS_LOCAL_URL", proxy.base_url)
        out = tmp_path_factory.mktemp("live-run")
        try:
            run = _study(files, "live", files / "calls.sqlite", out)
        finally:
            patch.undo()
    yield (files / "calls.sqlite", *run, proxy.stats)


def _evaluations(records):
    return [r for r in records if r["type"] == "evaluation"]


def test_a_three_node_graph_runs_live_and_fills_the_cache(recorded):
    cache, result, records, made, peak, stats = recorded
    assert made == CALLS == stats.forwarded
    (evaluation,) = _evaluations(records)
    assert len(evaluation["graph"]["nodes"]) == 2 and len(evaluation["questions"]) == 5
    assert evaluation["calls"] == 15 and evaluation["cache_hits"] == 0
    assert all(n["prompt_tokens"] > 0 and n["output_tokens"] > 0 for n in evaluation["nodes"])
    assert {n["model"] for n in evaluation["nodes"]} == {"smollm2-a", "smollm2-b"}
    assert result.evals_used == 5 and result.heldout_n == 5
    assert records[-1]["search_calls"] == 15 and records[-1]["search_dollars"] == 0
    assert result.calls == {"search_calls": 15, "search_cache_hits": 0, "search_dollars": 0.0}
    with sqlite3.connect(cache) as db:
        assert db.execute("select count(*) from calls").fetchone()[0] == CALLS
    # The provider's concurrency limit (2) held at the server, and calls did run side by side.
    assert stats.max_in_flight == 2 and peak == {"llamacpp": 2}


def test_replay_makes_no_calls_and_gives_identical_results(recorded, files, tmp_path):
    cache, live_result, live_records, *_ = recorded
    # Nothing listens on this port: a single network call would fail the study.
    patch = pytest.MonkeyPatch()
    patch.setenv("HARNESS_LOCAL_URL", f"http://127.0.0.1:{free_port()}/v1")
    try:
        result, records, made, _ = _study(files, "replay", cache, tmp_path)
    finally:
        patch.undo()
    assert made == 0
    assert result.heldout_accuracy == live_result.heldout_accuracy
    assert result.graph.id == live_result.graph.id
    (live,), (again,) = _evaluations(live_records), _evaluations(records)
    assert again["cache_hits"] == again["calls"] == 15
    for field in ("correct", "prompt_tokens", "output_tokens", "latency_s", "flops_units"):
        assert again[field] == live[field], field
    assert [n["latency_s"] for n in again["nodes"]] == [n["latency_s"] for n in live["nodes"]]


def test_faults_are_survived_recorded_and_never_charged_twice(server, files, tmp_path):
    proxy = FaultInjectingProxy(server.base_url, fault_rate=0.2, seed=3, hang_s=120)
    with proxy:
        patch = pytest.MonkeyPatch()
        patch.setenv("HARNESS_LOCAL_URL", proxy.base_url)
        try:
            result, records, made, peak = _study(
                files, "live", tmp_path / "calls.sqlite", tmp_path / "out", "pool-faults.yaml"
            )
        finally:
            patch.undo()
        stats = proxy.stats
        injected = sum(stats.injected.values())
        assert injected > 0, stats.log
        events = [r for r in records if r["type"] == "event" and r["kind"].startswith("call_")]
        # Every injected fault is one failed attempt in the trace, with what went wrong.
        assert len(events) == injected
        errors = " ".join(e["error"] for e in events)
        for kind, count in stats.injected.items():
            if count:
                assert ("timeout" if kind == "timeout" else f"HTTP {kind}") in errors
        # Each call reached the model once: retries replaced only the faulted attempts.
        assert stats.forwarded == CALLS
        assert made == CALLS + injected
        # (The proxy's own in-flight count includes hanging "timeout" handlers the client has
        # left, so the limit is checked on the client's side here.)
        assert peak == {"llamacpp": 2}
    assert result.evals_used == 5
    assert len(_evaluations(records)) == 1
    assert not [r for r in records if r["type"] == "failure"]
    assert records[-1]["type"] == "final" and records[-1]["evals_used"] == 5
