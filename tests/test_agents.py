"""Agents: specs, fail-fast checks, clients (against local fake servers), prompts, replies."""

from __future__ import annotations

import contextlib
import json
import math
import re
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.agents import (
    AgentError,
    AgentLedger,
    LedgeredAgent,
    load_agent,
    parse_agent_spec,
)
from harness.agents._anthropic import AnthropicAgent
from harness.agents._openai import OpenAIAgent
from harness.agents._rules import RulesAgent, combination_estimates
from harness.agents.questions import (
    KINDS,
    make_question,
    pilot_facts,
    prompt_template,
)
from harness.agents.replies import (
    ReplyError,
    consult,
    extract_json,
    parse_combinations,
    parse_edge_rows,
    parse_graph,
)
from harness.errors import ConfigError, UserError
from harness.pilot import PAPER
from harness.pool import load_pool
from harness.space import Space
from tests.agent_doubles import RecordingAgent, ScriptedAgentForFaultInjection, cheap_bench

POOL = load_pool("llama3")
SPACE = Space(POOL, (202, 275), level=12, task="math")
COUNTS = {"llama-3.2-3b": 2, "llama-3.2-1b": 1}


def graph_reply(nodes: list[Any], edges: list[Any], table: list[Any] | None = None) -> str:
    return json.dumps({"graph": {"nodes": nodes, "edges": edges}, "edge_table": table or []})


GOOD_NODES = [
    {"id": 0, "model": "3B", "role": "assistant"},
    {"id": 1, "model": "llama-3.2-3b", "role": "assistant"},
    {"id": 2, "model": "1B", "role": "fuser"},
]
GOOD_EDGES = [[0, 2], [1, 2], [2, "output"], [1, "output"]]


# ----- specs and fail-fast checks --------------------------------------------------------------


def test_good_specs():
    assert parse_agent_spec("rules").provider == "rules"
    assert parse_agent_spec("openai:gpt-4o-mini").model == "gpt-4o-mini"
    spec = parse_agent_spec("openai:smollm2@http://127.0.0.1:8080/v1")
    assert (spec.model, spec.base_url) == ("smollm2", "http://127.0.0.1:8080/v1")
    assert parse_agent_spec("anthropic:claude-3-5-haiku-latest").provider == "anthropic"
    agent = load_agent("rules")
    assert isinstance(agent, RulesAgent) and not agent.is_llm and agent.spec == "rules"


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("gemini:pro", "unknown agent"),
        ("llm", "unknown agent"),
        ("openai:", "no model"),
        ("anthropic:  ", "no model"),
        ("openai:m@ftp://host/v1", "not an http(s)"),
        ("openai:m@http://", "not an http(s)"),
        ("anthropic:m@http://127.0.0.1:1/v1", "openai-compatible servers only"),
    ],
)
def test_bad_specs(spec, words):
    with pytest.raises(ConfigError, match=re.escape(words)):
        load_agent(spec)


def test_missing_openai_key_names_the_variable(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(UserError, match="OPENAI_API_KEY"):
        load_agent("openai:gpt-4o-mini").check()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    load_agent("openai:gpt-4o-mini").check()


def test_missing_anthropic_key_names_the_variable(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(UserError, match="ANTHROPIC_API_KEY"):
        load_agent("anthropic:claude-3-5-haiku-latest").check()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_server_fails_fast():
    url = f"http://127.0.0.1:{closed_port()}/v1"
    started = time.perf_counter()
    with pytest.raises(UserError, match=rf"agent server {url}: not reachable"):
        load_agent(f"openai:m@{url}").check()
    assert time.perf_counter() - started < 3.5


# ----- the clients, against fake local servers -------------------------------------------------


class FakeServer:
    """An OpenAI- and Anthropic-compatible server on localhost that answers from a script."""

    def __init__(self, statuses: list[int], text: str, delay_s: float = 0.0) -> None:
        self.statuses, self.text, self.requests, self.delay_s = statuses, text, [], delay_s
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def reply(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self.reply(200, {"data": [{"id": "fake"}]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.requests.append((self.path, body))
                time.sleep(owner.delay_s)
                status = owner.statuses.pop(0) if owner.statuses else 200
                if status != 200:
                    self.reply(status, {"error": {"message": "try again", "type": "server"}})
                elif self.path.endswith("/chat/completions"):
                    self.reply(200, {
                        "id": "c1", "object": "chat.completion", "created": 0, "model": "fake",
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": owner.text}}],
                        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
                    })  # fmt: skip
                else:
                    self.reply(200, {
                        "id": "m1", "type": "message", "role": "assistant", "model": "fake",
                        "content": [{"type": "text", "text": owner.text}],
                        "stop_reason": "end_turn", "stop_sequence": None,
                        "usage": {"input_tokens": 13, "output_tokens": 5},
                    })  # fmt: skip

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def fake_server() -> Iterator[FakeServer]:
    server = FakeServer([503], '{"combinations": ["3x3B"]}')
    yield server
    server.server.shutdown()
    server.server.server_close()


def question() -> Any:
    return make_question("hybrid_table", {
        "task": "math", "slots": ["1B"], "output_model": "3B", "samples": [],
        "edge_table_text": "0 -> output | 0.500",
    })  # fmt: skip


def test_openai_client_json_mode_retries_usage(fake_server):
    agent = OpenAIAgent("fake", f"{fake_server.url}/v1", backoff_s=0.01)
    agent.check()  # the server answers GET /v1/models
    reply = agent.ask(question())
    assert reply.text == '{"combinations": ["3x3B"]}'
    assert (reply.prompt_tokens, reply.completion_tokens) == (11, 7)
    assert reply.cost_usd is None and reply.latency_s > 0  # a local server has no known price
    assert len(fake_server.requests) == 2  # the 503 was retried
    body = fake_server.requests[-1][1]
    assert body["response_format"] == {"type": "json_object"} and body["temperature"] == 0.0
    assert "JSON schema of the reply" in body["messages"][-1]["content"]


def test_openai_client_gives_up_with_an_agent_error(fake_server):
    fake_server.statuses = [500, 500, 500]
    agent = OpenAIAgent("fake", f"{fake_server.url}/v1", backoff_s=0.01, tries=3)
    with pytest.raises(AgentError, match="after 3 tries"):
        agent.ask(question())


def test_openai_client_does_not_repeat_a_timed_out_request(fake_server):
    fake_server.delay_s = 1.0
    agent = OpenAIAgent("fake", f"{fake_server.url}/v1", timeout_s=0.2, backoff_s=0.01)
    from harness.agents._client import AgentTimeout

    with pytest.raises(AgentTimeout, match="Timeout"):
        agent.ask(question())
    assert len(fake_server.requests) == 1


def test_openai_reasoning_models_get_completion_tokens_and_a_price(fake_server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", f"{fake_server.url}/v1")  # the SDK's own override
    monkeypatch.setenv("HARNESS_AGENT_MAX_TOKENS", "777")
    fake_server.statuses = []
    reply = OpenAIAgent("o3-mini").ask(question())
    body = fake_server.requests[-1][1]
    assert body["max_completion_tokens"] == 777 and "temperature" not in body
    assert reply.cost_usd == pytest.approx((11 * 1.10 + 7 * 4.40) / 1e6)


def test_bad_limit_variables_are_one_line(monkeypatch):
    monkeypatch.setenv("HARNESS_AGENT_TIMEOUT_S", "soon")
    with pytest.raises(UserError, match="HARNESS_AGENT_TIMEOUT_S='soon': expected a positive"):
        OpenAIAgent("m")


def test_anthropic_client_usage_and_price(fake_server, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_server.url)
    agent = AnthropicAgent("claude-3-5-haiku-latest", backoff_s=0.01)
    reply = agent.ask(question())
    assert reply.text == '{"combinations": ["3x3B"]}'
    assert (reply.prompt_tokens, reply.completion_tokens) == (13, 5)
    assert reply.cost_usd == pytest.approx((13 * 0.80 + 5 * 4.00) / 1e6)
    path, body = fake_server.requests[-1]
    assert path.endswith("/v1/messages") and "one JSON object" in body["system"]
    assert [m["role"] for m in body["messages"]] == ["user"]


# ----- prompts ---------------------------------------------------------------------------------


def test_every_kind_has_a_prompt_file():
    for name in ("system", "insights", "combinations", "next_graph", "textgrad", "opro", "hybrid"):
        assert prompt_template(name).strip()
    assert len(KINDS) == 5
    with pytest.raises(ValueError, match="unknown question kind"):
        make_question("poem", {})


@pytest.fixture(scope="module")
def recorded() -> RecordingAgent:
    agent = RecordingAgent()
    cheap_bench(budget=40).run("agent-reinforce", {}, seed=0, agent=agent)
    return agent


def test_combination_prompt_has_insights_pilot_and_candidates(recorded):
    first, _ = recorded.calls[0]
    assert first.kind == "combinations"
    text = first.messages[-1]["content"]
    for line in prompt_template("insights").strip().splitlines():
        assert line in text
    pilot = first.facts["pilot"]
    assert "Single model, one call: 1B " + f"{pilot['single']['1B']:g}" in text
    for label, accuracy in pilot["combos"].items():
        assert f"{label} {accuracy:g}" in text
    assert "Width sweep, all 1B" in text and "Depth sweep, all 3B" in text
    for combo in SPACE.combos():
        assert f"- {combo.label} (cost {combo.cost})" in text


def test_iteration_prompt_has_graph_text_edge_table_and_rules(recorded):
    question, _ = next(call for call in recorded.calls if call[0].kind == "next_graph")
    text = question.messages[-1]["content"]
    assert question.facts["last"]["text"] in text
    assert question.facts["edge_table_text"] in text
    assert "0 -> output | " in text and "Insights from the pilot experiments" in text
    assert "Keep the model counts: exactly" in text and "Width sweep" in text
    assert "latency" not in text.lower().split("rules:")[1]  # accuracy objective: no latency rule
    textgrad = make_question("textgrad_graph", {**question.facts, "pilot": None})
    body = textgrad.messages[-1]["content"]
    assert "Insight" not in body and "Raise an edge" not in body
    assert question.facts["last"]["text"] in body and question.facts["edge_table_text"] in body


def test_joint_objective_tells_the_latency(recorded):
    question, _ = next(call for call in recorded.calls if call[0].kind == "next_graph")
    facts = {**question.facts, "objective": "accuracy-latency"}
    text = make_question("next_graph", facts).messages[-1]["content"]
    assert f"Its latency: {facts['last']['latency_s']:.2f} s per question" in text
    assert "Cut the latency while keeping the accuracy" in text


# ----- reply parsing ---------------------------------------------------------------------------


def test_good_graph_reply_parses():
    graph = parse_graph(extract_json(graph_reply(GOOD_NODES, GOOD_EDGES)), POOL, "3B", COUNTS)
    assert graph.model_counts() == COUNTS and graph.in_degree(-1) == 2


@pytest.mark.parametrize(
    "text",
    [
        "Here is my graph:\n" + graph_reply(GOOD_NODES, GOOD_EDGES) + "\nI hope it helps {:)}",
        "```json\n" + graph_reply(GOOD_NODES, GOOD_EDGES) + "\n```",
        '<think>maybe {"graph": 1}</think>```\n' + graph_reply(GOOD_NODES, GOOD_EDGES) + "```",
        "{not json} then " + graph_reply(GOOD_NODES, GOOD_EDGES) + " trailing [1, 2",
    ],
)
def test_json_is_found_around_prose_fences_and_trailing_text(text):
    graph = parse_graph(extract_json(text), POOL, "3B", COUNTS)
    assert len(graph.nodes) == 3


def node(i: int, model: str = "3B", role: str = "assistant") -> dict[str, Any]:
    return {"id": i, "model": model, "role": role}


@pytest.mark.parametrize(
    ("nodes", "edges", "words"),
    [
        ([node(0), node(1), node(2)], [[0, "output"], [1, "output"], [2, "output"]],
         "model counts 3 x 3B differ from the combination: keep 1 x 1B + 2 x 3B"),
        ([node(0), node(1), node(3, "1B")], [[0, "output"], [1, "output"], [3, "output"]],
         "node ids must be 0..2"),
        ([node(0), node(1), node(1, "1B")], [[0, "output"]], "node 1 is listed twice"),
        ([node(0), node(1), node(2, "1B")], [[0, 1], [1, 2], [2, 0], [2, "output"]],
         "closes a cycle"),
        ([node(0), node(1), node(2, "1B")], [[0, 5], [1, "output"], [2, "output"]],
         "node 5 is not in the nodes list"),
        ([node(0), node(1), node(2, "1B")], [[0, "output"], [1, "output"]],
         "no path to the output node"),
        ([node(0), node(1), node(2, "1B", "boss")], [[0, "output"]], "role 'boss'"),
        ([node(0), node(1), node(2, "13B")], [[0, "output"]], "unknown model '13B'"),
        ([node(0, role="fuser"), node(1), node(2, "1B")], [[0, "output"], [1, 0], [2, 0]],
         None),
        ([node(0), node(1, role="fuser"), node(2, "1B")],
         [[0, "output"], [1, "output"], [2, "output"]], "fuser needs at least one assistant"),
        ([node(0), node(1), node(2, "1B")], [["output", 0], [1, "output"]],
         "output node has no successors"),
        ([node(0), node(1), node(2, "1B")], [[0, "out"]], "is not a node id"),
        ([node(0), node(1), node(2, "1B")], [[0, 0]], "cannot feed itself"),
    ],
)  # fmt: skip
def test_adversarial_graph_replies(nodes, edges, words):
    reply = extract_json(graph_reply(nodes, edges))
    if words is None:
        parse_graph(reply, POOL, "3B", COUNTS)  # a valid fuser: the control case
        return
    with pytest.raises(ReplyError, match=re.escape(words)):
        parse_graph(reply, POOL, "3B", COUNTS)


@pytest.mark.parametrize(
    ("rows", "words"),
    [
        ([[0, "output", 1.5]], r"probability 1.5 is not in \[0, 1\]"),
        ([[0, 1, -0.1]], r"probability -0.1 is not in \[0, 1\]"),
        ([[0, 1, "high"]], "must be a number"),
        ([[0, 1, float("nan")]], "must be a number"),
        ([[0, 1, True]], "must be a number"),
        ([[1, 1, 0.5]], "not a candidate edge"),
        ([[0, 7, 0.5]], "not a candidate edge"),
        ([["output", 0, 0.5]], "not a candidate edge"),
        ([[0, 1]], "give \\[SOURCE, TARGET, PROBABILITY\\]"),
        ([[0, 1, 0.2], [0, 1, 0.3]], "listed twice"),
    ],
)
def test_bad_edge_tables(rows, words):
    text = json.dumps({"edge_table": rows})
    with pytest.raises(ReplyError, match=words):
        parse_edge_rows(extract_json(text), 3)


def test_edge_rows_accept_objects():
    rows = parse_edge_rows({"edge_table": [{"source": 0, "target": "output", "p": 0.7}]}, 2)
    assert rows == {(0, "output"): 0.7}


def test_missing_fields_are_named():
    with pytest.raises(ReplyError, match='no "graph" field'):
        parse_graph({"edge_table": []}, POOL, "3B")
    with pytest.raises(ReplyError, match='"nodes" must be a JSON list'):
        parse_graph({"graph": {"nodes": {}, "edges": []}}, POOL, "3B")


@pytest.mark.parametrize(
    ("labels", "words"),
    [
        (["4x3B"], "give exactly 2 combinations, got 1"),
        (["4x3B", "4x3B"], "listed twice"),
        (["3x3B", "12x1B"], "'3x3B' is not a candidate"),
        (["4x3B", "3x13B"], "unknown model"),
        (["4x3B", 7], "not a label string"),
    ],
)
def test_bad_combination_replies(labels, words):
    text = json.dumps({"combinations": labels})
    with pytest.raises(ReplyError, match=words):
        parse_combinations(text, SPACE, SPACE.combos(), 2)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200) | st.recursive(
    st.none() | st.booleans() | st.integers(-3, 20) | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["graph", "nodes", "edges", "id", "model", "role", "edge_table"]),
        inner, max_size=4),
    max_leaves=20,
).map(json.dumps))  # fmt: skip
def test_any_reply_is_parsed_or_refused_with_a_reply_error(text):
    try:
        reply = extract_json(text)
        parse_graph(reply, POOL, "3B", COUNTS)
    except ReplyError as exc:
        assert "\n" not in str(exc)
    with contextlib.suppress(ReplyError):
        parse_edge_rows(extract_json(text), 3)


# ----- retries, fallbacks and the ledger -------------------------------------------------------


def test_retry_feeds_the_error_back():
    good = '{"combinations": ["4x3B", "12x1B"]}'
    agent = ScriptedAgentForFaultInjection(["I think 4x3B.", '{"combinations": ["4x3B"]}', good])
    q = make_question("hybrid_table", {"task": "math", "slots": [], "output_model": "3B",
                                       "samples": [], "edge_table_text": ""})  # fmt: skip
    result = consult(agent, q, lambda t: parse_combinations(t, SPACE, SPACE.combos(), 2))
    assert result.value is not None and [c.label for c in result.value] == ["4x3B", "12x1B"]
    assert result.tries == 3 and len(result.errors) == 2
    second, third = agent.questions[1], agent.questions[2]
    assert second.messages[-2] == {"role": "assistant", "content": "I think 4x3B."}
    assert second.messages[-1]["content"].startswith(
        "Your reply was invalid: no JSON object found in the reply; reply again"
    )
    assert "give exactly 2 combinations, got 1" in third.messages[-1]["content"]
    assert third.facts["feedback"] == "give exactly 2 combinations, got 1"


def test_three_invalid_replies_fall_back_and_are_noted():
    records: list[dict[str, Any]] = []
    inner = ScriptedAgentForFaultInjection(["no", AgentError("server down"), "{}"], (100, 20))
    agent = LedgeredAgent(inner, AgentLedger(), records.append)
    q = question()
    result = consult(agent, q, lambda t: parse_edge_rows(extract_json(t), 1), fallback="Adam")
    assert result.value is None and result.tries == 3
    notes = [r for r in records if r["type"] == "agent_note"]
    assert [n["event"] for n in notes] == ["invalid_reply", "invalid_reply", "fallback"]
    assert notes[-1]["fallback"] == "Adam"
    totals = agent.ledger.totals()
    assert totals["calls"] == 3 and totals["failed_calls"] == 1
    assert totals["prompt_tokens"] == 200 and totals["completion_tokens"] == 40
    assert [r["ok"] for r in records if r["type"] == "agent_call"] == [True, False, True]


def test_a_timeout_ends_the_consultation():
    from harness.agents._client import AgentTimeout

    agent = ScriptedAgentForFaultInjection([AgentTimeout("APITimeoutError: too slow")])
    result = consult(agent, question(), lambda t: t, tries=3)
    assert result.value is None and result.tries == 1 and len(agent.questions) == 1
    assert result.errors == ["agent call timed out: APITimeoutError: too slow"]


def test_ledger_cost_is_unknown_when_any_price_is():
    ledger = AgentLedger()
    agent = LedgeredAgent(ScriptedAgentForFaultInjection(["{}"], (5, 5)), ledger, lambda r: None)
    agent.ask(question())
    assert ledger.totals()["cost_usd"] == pytest.approx(0.001)
    agent.inner = RulesAgent()
    agent.ask(make_question("hybrid_table", {**question().facts, "edge_table": []}))
    assert ledger.totals()["calls"] == 2


# ----- the rules agent -------------------------------------------------------------------------


def paper_pilot(task: str) -> dict[str, Any]:
    return pilot_facts({
        "single": [{"short": k, "accuracy": v} for k, v in PAPER[task]["single"].items()],
        "combos": [{"combo": k, "accuracy": v} for k, v in PAPER[task]["combos"].items()],
    })  # fmt: skip


def combination_facts(space: Space, task: str) -> dict[str, Any]:
    from harness.agents.questions import combo_facts, model_facts

    return {
        "task": task, "level": space.level, "models": model_facts(space.pool, task),
        "pilot": paper_pilot(task), "candidates": [combo_facts(c) for c in space.combos()],
        "choose": 2,
    }  # fmt: skip


def test_rules_agent_uses_measured_combinations_first():
    space = Space(POOL, (202, 275), level=9, task="math")  # the paper's five candidates
    reply = RulesAgent().ask(make_question("combinations", combination_facts(space, "math")))
    assert json.loads(reply.text)["combinations"] == ["3x3B", "1x8B"]  # 54 and 49 in the pilot
    mmlu = Space(POOL, (213, 215), level=9, task="mmlu")
    reply = RulesAgent().ask(make_question("combinations", combination_facts(mmlu, "mmlu")))
    assert json.loads(reply.text)["combinations"][0] == "1x8B"  # MMLU prefers one strong model


def test_rules_agent_estimates_unmeasured_combinations_by_insight_one():
    estimates = combination_estimates(combination_facts(SPACE, "math"))
    # Mean single accuracy + the collaboration gain at the nearest measured node count:
    # 4x3B = 40 + mean(gain of 3x3B, gain of 2x3B+3x1B) = 40 + (14 + 10.4) / 2.
    assert estimates["4x3B"] == pytest.approx(52.2)
    assert estimates["12x1B"] < estimates["2x3B+6x1B"] < estimates["4x3B"]  # weak nodes cost


def test_rules_agent_is_deterministic_and_labelled(recorded):
    question, reply = recorded.calls[1]
    assert RulesAgent().ask(question) == reply
    assert (reply.prompt_tokens, reply.completion_tokens, reply.latency_s) == (0, 0, 0.0)
    with pytest.raises(AgentError, match="no rule for question kind"):
        RulesAgent().ask(dataclasses_replace_kind(question, "haiku"))


def dataclasses_replace_kind(question: Any, kind: str) -> Any:
    import dataclasses

    return dataclasses.replace(question, kind=kind)


def test_rules_replies_pass_the_strict_parser(recorded):
    for question, reply in recorded.calls[1:]:
        facts = question.facts
        parsed = extract_json(reply.text)
        parse_graph(parsed, POOL, facts["output_model"], facts["combination"]["counts"])
        rows = parse_edge_rows(parsed, len(facts["last"]["graph"]["nodes"]))
        assert all(0 <= p <= 1 and not math.isnan(p) for p in rows.values())
