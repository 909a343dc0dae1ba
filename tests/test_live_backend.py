"""The live and replay backends without a model server: limits, retries, bad input, dry runs.

Calls against a real server are in tests/test_integration_live.py. Here the only "server" is
the fault-injecting proxy answering every call with a fault itself (it forwards nothing).
"""

from __future__ import annotations

import asyncio
import json
import random

import pytest

from harness.cli import main
from harness.errors import CallError
from harness.faultproxy import FaultInjectingProxy
from harness.live._clients import ProviderClient, backoff_delay
from harness.live._limits import RateLimiter
from harness.live.providers import Provider, Route
from harness.localserver import free_port

LOCAL_POOL = """\
name: broken
base: local
providers:
  llamacpp: {{type: {type}, base_url: "{url}", concurrency: 2}}
serve:
  smollm2-a: {{provider: {provider}, model_id: smollm2-a}}
  smollm2-b: {{provider: llamacpp, model_id: smollm2-b}}
"""


def run(capsys, *args):
    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


# ----- limits -----------------------------------------------------------------------------------


class FakeTime:
    """A clock that only moves when the limiter sleeps (so per-minute limits test in no time)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_requests_per_minute_spread_calls_out(monkeypatch):
    clock = FakeTime()
    monkeypatch.setattr("harness.live._limits.asyncio.sleep", clock.sleep)
    limiter = RateLimiter(concurrency=8, requests_per_minute=2, clock=clock)
    started = []

    async def call():
        async with limiter.slot():
            started.append(clock.now)

    async def five():
        await asyncio.gather(*(call() for _ in range(5)))

    asyncio.run(five())
    # A full bucket of 2, then one more every 30 s.
    assert started == pytest.approx([0, 0, 30, 60, 90])


def test_tokens_per_minute_hold_back_large_calls(monkeypatch):
    clock = FakeTime()
    monkeypatch.setattr("harness.live._limits.asyncio.sleep", clock.sleep)
    limiter = RateLimiter(concurrency=8, tokens_per_minute=1000, clock=clock)
    started = []

    async def call(tokens):
        async with limiter.slot(tokens):
            started.append(clock.now)

    async def three():
        # The last is larger than the whole bucket: it waits for a full one, then goes.
        for tokens in (600, 600, 5000):
            await call(tokens)

    asyncio.run(three())
    assert started == pytest.approx([0, 12, 72])


def test_concurrency_limit_caps_calls_in_flight():
    limiter = RateLimiter(concurrency=3)

    async def call():
        async with limiter.slot():
            await asyncio.sleep(0.01)

    async def many():
        await asyncio.gather(*(call() for _ in range(10)))

    asyncio.run(many())
    assert limiter.peak_in_flight == 3 and limiter.in_flight == 0


def test_backoff_grows_then_caps():
    rng = random.Random(1)
    delays = [max(backoff_delay(k, 1.0, 8.0, rng) for _ in range(200)) for k in range(6)]
    assert delays[0] <= 1.0 < delays[2] <= 4.0 < delays[4] <= 8.0 and delays[5] <= 8.0


# ----- retries ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["429", "500"])
def test_a_call_that_always_fails_is_retried_then_one_clear_error(kind):
    events = []
    with FaultInjectingProxy("http://127.0.0.1:9/v1", fault_rate=1.0, kinds=(kind,)) as proxy:
        provider = Provider(
            "flaky", "openai", proxy.base_url, None, max_retries=2, backoff_s=0.01, timeout_s=5
        )
        client = ProviderClient(provider, None, events.append, random.Random(0))
        route = Route("m", provider, "some-model", {})
        params = {"temperature": 0.0, "top_p": 1.0, "max_tokens": 8, "stop": None}
        messages = [{"role": "user", "content": "hi"}]

        async def attempt():
            try:
                return await client.complete(route, messages, params, None, "question q1")
            finally:
                await client.aclose()

        with pytest.raises(CallError) as caught:
            asyncio.run(attempt())
        assert proxy.stats.injected == {kind: 3} and proxy.stats.forwarded == 0
    message = str(caught.value)
    assert f"HTTP {kind} after 3 attempts" in message and "flaky" in message
    assert "question q1" in message and "\n" not in message
    assert [e["kind"] for e in events] == ["call_retry", "call_retry", "call_failed"]
    assert all(e["error"] == f"HTTP {kind}" for e in events)


# ----- bad input: one line, exit 2, before any call ---------------------------------------------


def _pool(tmp_path, url="http://127.0.0.1:9/v1", type="openai", provider="llamacpp"):
    path = tmp_path / "pool.yaml"
    path.write_text(LOCAL_POOL.format(url=url, type=type, provider=provider))
    return str(path)


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"type": "azure"}, "unknown provider type 'azure'"),
        ({"provider": "olama"}, "unknown provider 'olama'"),
        ({"url": "localhost:8080"}, "malformed URL"),
    ],
)
def test_a_bad_pool_fails_before_any_call(tmp_path, capsys, change, needle):
    out = tmp_path / "run"
    pool = _pool(tmp_path, **change)
    status, stdout, err = run(
        capsys, "eval", "--method", "random", "--task", "gsm8k", "--backend", "live",
        "--pool", pool, "--out", str(out), "--cache", str(tmp_path / "c.sqlite"),
    )  # fmt: skip
    assert status == 2 and needle in err and "pool.yaml" in err
    assert err.count("\n") == 1 and "Traceback" not in err and stdout == ""
    assert not out.exists()


def test_a_missing_key_variable_fails_before_any_call(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    status, _, err = run(
        capsys, "eval", "--method", "random", "--task", "math", "--backend", "live",
        "--pool", "openai", "--out", str(tmp_path / "run"),
    )  # fmt: skip
    assert status == 2 and "OPENAI_API_KEY is not set" in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_a_corrupt_cache_file_fails_before_any_call(tmp_path, capsys):
    cache = tmp_path / "calls.sqlite"
    cache.write_bytes(b"not a database, just bytes " * 100)
    status, _, err = run(
        capsys, "eval", "--method", "random", "--task", "gsm8k", "--backend", "live",
        "--pool", _pool(tmp_path), "--cache", str(cache), "--out", str(tmp_path / "run"),
    )  # fmt: skip
    assert status == 2 and "calls.sqlite" in err and "not a harness call cache" in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_replay_names_the_first_missing_call(tmp_path, capsys, monkeypatch):
    # Nothing listens there: replay must not even try.
    monkeypatch.setenv("HARNESS_LOCAL_URL", f"http://127.0.0.1:{free_port()}/v1")
    status, _, err = run(
        capsys, "eval", "--method", "parallel", "--option", "model=a", "--option", "width=1",
        "--task", "gsm8k", "--backend", "replay", "--pool", "local", "--seeds", "1",
        "--cache", str(tmp_path / "empty.sqlite"), "--out", str(tmp_path / "run"),
    )  # fmt: skip
    error = err.splitlines()[-1]  # after the progress line
    assert status == 2 and error.startswith("harness: error: replay:") and "Traceback" not in err
    assert "not in the call cache" in error and "first: model smollm2-a node 0 question" in err
    assert "seed 0 epoch 0" in err


# ----- dry run ----------------------------------------------------------------------------------


def test_dry_run_prints_the_most_calls_tokens_and_dollars(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-used")
    status, stdout, err = run(
        capsys, "eval", "--method", "random", "--task", "math", "--backend", "live",
        "--pool", "openai", "--seeds", "2", "--dry-run", "--json",
        "--cache", str(tmp_path / "c.sqlite"), "--out", str(tmp_path / "run"),
    )  # fmt: skip
    assert status == 0, err
    plan = json.loads(stdout)
    nodes = plan["max_agent_nodes"]
    assert plan["search"]["calls"] == 40 * (nodes + 1)
    assert plan["total"]["calls"] == 2 * plan["per_study"]["calls"]
    assert plan["dollars_at_most"] > 0
    assert not (tmp_path / "run").exists()
    status, stdout, _ = run(capsys, "eval", "--method", "random", "--task", "math", "--dry-run")
    assert status == 0 and "nothing was called" in stdout and "at most" in stdout
