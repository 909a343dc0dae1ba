"""The LLM-based methods with the offline rules agent: conformance, the paper's phases, options."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from baselines.agent_reinforce import AgentReinforce, pretest_variants
from harness.errors import ConfigError
from harness.methods import load_method
from harness.study import Bench
from harness.testing import MethodConformance
from harness.trace import read_trace
from tests.agent_doubles import (
    CorruptingRulesAgent,
    ScriptedAgentForFaultInjection,
    cheap_bench,
)

AGENT_METHODS = ("agent-reinforce", "textgrad", "opro", "hybrid")


class AgentConformance(MethodConformance):
    """The conformance suite on a shared bench whose (cheap) pilot is already computed."""

    @pytest.fixture(scope="class")
    @classmethod
    def conformance_bench(cls, conformance_task: str, conformance_protocol: Any) -> Bench:
        return cheap_bench(conformance_task, cls.budget, conformance_protocol.heldout_size)


class TestAgentReinforce(AgentConformance):
    @pytest.fixture(
        params=[{}, {"recommend": "best", "objective": "accuracy-latency"}],
        ids=["paper", "best-joint"],
    )
    def method_spec(self, request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
        return "agent-reinforce", request.param


class TestTextGrad(AgentConformance):
    @pytest.fixture
    def method_spec(self) -> tuple[str, dict[str, Any]]:
        return "textgrad", {}


class TestOpro(AgentConformance):
    @pytest.fixture
    def method_spec(self) -> tuple[str, dict[str, Any]]:
        return "opro", {}


class TestHybrid(AgentConformance):
    @pytest.fixture
    def method_spec(self) -> tuple[str, dict[str, Any]]:
        return "hybrid", {}


def test_agent_methods_are_registered_and_labelled():
    for name in AGENT_METHODS:
        method = load_method(name, {})
        assert method.uses_agent and json.loads(json.dumps(method.options)) == method.options
    assert load_method("agent-reinforce", {}).uses_pilot


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"recommend": "first"}, "recommend must be last or best"),
        ({"objective": "speed"}, "objective must be accuracy or accuracy-latency"),
        ({"batch": 0}, "batch must be a positive integer"),
        ({"initial_edge_prob": 1.5}, "initial_edge_prob"),
        ({"temperature": 1}, "bad options"),
    ],
)
def test_bad_options(options, words):
    with pytest.raises(ConfigError, match=words):
        load_method("agent-reinforce", options)


# ----- Agent-REINFORCE follows the paper ---------------------------------------------------------


def study(method: str, options: dict[str, Any], seed: int, tmp: Path, **kw: Any) -> list[dict]:
    result = cheap_bench(budget=40, heldout=100).run(method, options, seed, tmp, **kw)
    assert result.trace is not None
    return read_trace(result.trace)


def of(records: list[dict], kind: str) -> list[dict]:
    return [r for r in records if r["type"] == kind]


def test_pretest_variants_remove_the_weakest_first():
    space = cheap_bench().space
    labels = [v.label for v in pretest_variants(space, space.parse_combo("3x3B+3x1B"))]
    assert labels == ["3x3B+3x1B", "3x3B+2x1B", "3x3B+2x1B", "3x3B+2x1B", "2x3B+3x1B"]
    assert [v.label for v in pretest_variants(space, space.parse_combo("1x8B"))] == ["1x8B"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agent_reinforce_follows_the_paper_phases(seed, tmp_path):
    records = study("agent-reinforce", {}, seed, tmp_path)
    calls = of(records, "agent_call")
    evaluations = of(records, "evaluation")
    sizes = [len(r["questions"]) for r in evaluations]
    first_eval = records.index(evaluations[0])
    # (1) the combination question comes before any evaluation
    assert calls[0]["kind"] == "combinations" and records.index(calls[0]) < first_eval
    # (2) the pre-test: up to 10 variants on one question each; (3)-(4) then batches of 3
    pretest = sizes.index(3)
    assert 1 <= pretest <= 10 and set(sizes[:pretest]) == {1}
    assert all(n == 3 for n in sizes[pretest:-1]) and 1 <= sizes[-1] <= 3
    assert sum(sizes) == 40
    # one next_graph question per iteration after iteration 0
    assert [c["kind"] for c in calls[1:]] == ["next_graph"] * (len(sizes) - pretest - 1)
    # iteration 0 uses the models of a pre-tested variant
    tested = [sorted(n["model"] for n in r["graph"]["nodes"]) for r in evaluations[:pretest]]
    zero = evaluations[pretest]["graph"]["nodes"]
    assert any(
        all(sorted(n["model"] for n in zero).count(m) <= models.count(m) for m in models)
        for models in tested
    )
    assert of(records, "event") == [] and of(records, "agent_note") == []
    assert records[0]["agent"] == {"spec": "rules", "is_llm": False}


def test_recommend_last_and_best(tmp_path):
    last = study("agent-reinforce", {"recommend": "last"}, 3, tmp_path / "last")
    best = study("agent-reinforce", {"recommend": "best"}, 3, tmp_path / "best")
    evals = of(last, "evaluation")
    assert [r["graph_id"] for r in evals] == [r["graph_id"] for r in of(best, "evaluation")]
    assert last[-1]["graph_id"] == evals[-1]["graph_id"]
    rounds = evals[[len(r["questions"]) for r in evals].index(3) :]
    top = max(r["accuracy"] for r in rounds)
    winner = next(r for r in rounds if r["accuracy"] == top and r["flops_units"] == min(
        x["flops_units"] for x in rounds if x["accuracy"] == top))  # fmt: skip
    assert best[-1]["graph_id"] == winner["graph_id"]


def test_joint_objective_finds_lower_latency_at_a_small_accuracy_cost():
    bench = cheap_bench(budget=40, heldout=100)
    plain = [bench.run("agent-reinforce", {}, seed) for seed in range(6)]
    joint = [bench.run("agent-reinforce", {"objective": "accuracy-latency"}, s) for s in range(6)]
    latency = [np.mean([r.latency_s for r in rs]) for rs in (plain, joint)]
    accuracy = [np.mean([r.heldout_accuracy for r in rs]) for rs in (plain, joint)]
    assert latency[1] < 0.85 * latency[0]
    assert accuracy[1] > accuracy[0] - 0.06  # a small accuracy cost at most


# ----- an agent that misbehaves ----------------------------------------------------------------


def test_invalid_replies_are_retried_with_the_error(tmp_path):
    def corrupt(text: str) -> str:
        return "Sure! " + text.replace('"role": "assistant"', '"role": "boss"', 1)

    agent = CorruptingRulesAgent(corrupt)
    records = study("agent-reinforce", {}, 0, tmp_path, agent=agent)
    notes = of(records, "agent_note")
    invalid = [n for n in notes if n["event"] == "invalid_reply"]
    assert invalid and all(
        "role 'boss'" in n["error"] for n in invalid if n["kind"] == "next_graph"
    )
    assert not [n for n in notes if n["event"] == "fallback"]
    retried = [q for q in agent.questions if "feedback" in q.facts]
    assert retried and "Your reply was invalid: " in retried[0].messages[-1]["content"]
    assert of(records, "event") == [] and records[-1]["evals_used"] == 40


@pytest.mark.parametrize("method", AGENT_METHODS)
def test_an_agent_that_never_answers_well_falls_back(method, tmp_path):
    agent = ScriptedAgentForFaultInjection(["I would rather not.", "{}"], tokens=(50, 5))
    records = study(method, {}, 0, tmp_path, agent=agent)
    assert of(records, "event") == [] and records[-1]["evals_used"] == 40
    fallbacks = [n for n in of(records, "agent_note") if n["event"] == "fallback"]
    calls = of(records, "agent_call")
    assert fallbacks and len(calls) == 3 * len(fallbacks)
    assert records[-1]["agent"]["calls"] == len(calls)
    assert records[-1]["agent"]["prompt_tokens"] == 50 * len(calls)
    assert records[-1]["graph_id"] in {r["graph_id"] for r in of(records, "evaluation")}


def test_agent_reinforce_needs_the_pilot():
    import random

    from harness.agents import load_agent
    from harness.methods import SearchEnv

    env = SearchEnv(cheap_bench().space, "math", 0, random.Random(0), 3, lambda: 40,
                    {"agent": load_agent("rules")})  # fmt: skip
    with pytest.raises(ConfigError, match="pilot"):
        AgentReinforce().setup(env)
