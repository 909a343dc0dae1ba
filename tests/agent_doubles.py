"""Test doubles for agents, and a cheap shared bench whose pilot is the sim's own (small)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from harness.agents import Agent, AgentError, AgentQuestion, AgentReply
from harness.agents._rules import RulesAgent
from harness.pilot import run_pilot
from harness.protocol import Protocol, load_protocol
from harness.study import Bench


class ScriptedAgentForFaultInjection(Agent):
    """Replies from a script; an ``AgentError`` instance in it is raised; then repeats the last.

    Every question asked is kept (``questions``), so tests can read what was fed back.
    """

    spec = "scripted"
    is_llm = False

    def __init__(self, replies: Sequence[str | AgentError], tokens: tuple[int, int] = (0, 0)):
        self.replies = list(replies)
        self.tokens = tokens
        self.questions: list[AgentQuestion] = []

    def ask(self, question: AgentQuestion) -> AgentReply:
        self.questions.append(question)
        reply = self.replies[min(len(self.questions), len(self.replies)) - 1]
        if isinstance(reply, AgentError):
            raise reply
        return AgentReply(reply, *self.tokens, cost_usd=0.001, latency_s=0.0)


class CorruptingRulesAgent(Agent):
    """The rules agent, but the first reply to each new question is ``corrupt(reply)``."""

    spec = "rules-corrupted"
    is_llm = False

    def __init__(self, corrupt: Callable[[str], str]) -> None:
        self.inner, self.corrupt = RulesAgent(), corrupt
        self.questions: list[AgentQuestion] = []

    def ask(self, question: AgentQuestion) -> AgentReply:
        self.questions.append(question)
        reply = self.inner.ask(question)
        if "feedback" in question.facts:
            return reply
        return dataclasses.replace(reply, text=self.corrupt(reply.text))


class RecordingAgent(Agent):
    """The rules agent, keeping every question and reply."""

    spec = "rules"
    is_llm = False

    def __init__(self) -> None:
        self.inner = RulesAgent()
        self.calls: list[tuple[AgentQuestion, AgentReply]] = []

    def ask(self, question: AgentQuestion) -> AgentReply:
        reply = self.inner.ask(question)
        self.calls.append((question, reply))
        return reply


_BENCHES: dict[tuple[str, int, Any], Bench] = {}


def cheap_bench(task: str = "math", budget: int = 15, heldout: int | None = 50) -> Bench:
    """A sim bench (shared per process) whose pilot tables are the sim's, with few repetitions.

    The study computes the full pilot once per bench (seconds); tests need its shape only.
    """
    key = (task, budget, heldout)
    if key not in _BENCHES:
        protocol: Protocol = load_protocol("paper").with_budget(budget)
        protocol = dataclasses.replace(protocol, heldout_size=heldout)
        bench = Bench(task, protocol, "sim")
        bench._pilot = run_pilot(
            bench.task, bench.pool, bench.backend, bench.data.search, seed=0, graphs=4,
            min_evals=200,
        )  # fmt: skip
        _BENCHES[key] = bench
    return _BENCHES[key]
