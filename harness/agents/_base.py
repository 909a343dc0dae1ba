"""The agent interface: the LLM (or the offline ``rules`` agent) an LLM-based method consults.

A method asks its agent *structured questions* (:class:`AgentQuestion`): each carries the chat
messages an LLM reads (built from the prompt files) **and** the same facts as data, so that the
offline ``rules`` agent can answer by applying PAPER.md's insights explicitly. Every agent
replies with text in the same format, which the method parses the same way, so an LLM and the
rules agent go through one code path.

The harness wraps the study's agent in a :class:`LedgeredAgent`: every call (tokens in and out,
dollars, latency, errors) is recorded in the study's agent ledger and trace. Methods never see
the ledger and cannot bypass it.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Agent",
    "AgentCall",
    "AgentError",
    "AgentLedger",
    "AgentQuestion",
    "AgentReply",
    "LedgeredAgent",
]


class AgentError(Exception):
    """An agent call that failed (network, refusal, timeout) after the client's own retries."""


@dataclass(frozen=True)
class AgentQuestion:
    """One structured question to an agent.

    Attributes:
        kind: what is asked, e.g. ``combinations`` (which model combinations to try) or
            ``next_graph`` (the next graph and edge-probability table).
        messages: the chat messages an LLM reads (system + user, from the prompt files).
        facts: the same content as data for the ``rules`` agent (candidates, pilot table,
            last graph, its accuracy and latency, the edge table, the history).
        json_schema: the JSON schema the reply must follow (LLMs get it in JSON mode).
    """

    kind: str
    messages: tuple[Mapping[str, str], ...]
    facts: Mapping[str, Any] = field(default_factory=dict)
    json_schema: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class AgentReply:
    """An agent's reply and what it cost."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None
    latency_s: float = 0.0


class Agent(ABC):
    """Something that answers :class:`AgentQuestion`s.

    Attributes:
        spec: how it was named on the command line (``rules``, ``openai:gpt-4o-mini``,
            ``openai:MODEL@http://HOST:PORT/v1``, ``anthropic:MODEL``); every output labels
            results with it.
        is_llm: False for the offline ``rules`` agent, so no one mistakes it for an LLM.
    """

    spec: str = ""
    is_llm: bool = True

    @abstractmethod
    def ask(self, question: AgentQuestion) -> AgentReply:
        """Answer one question (raises :class:`AgentError` on failure)."""

    def check(self) -> None:
        """Fail fast, before any budget is spent, if the agent cannot be reached or configured.

        Raises:
            UserError: a missing API key (naming the variable), an unreachable server.
        """
        return None  # an agent with nothing to check (the offline rules agent)


@dataclass(frozen=True)
class AgentCall:
    """One ledger entry."""

    kind: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None
    latency_s: float
    ok: bool
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """A trace record body."""
        return {
            "kind": self.kind,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost_usd": self.cost_usd,
            "latency_s": self.latency_s,
            "ok": self.ok,
            "error": self.error,
        }


@dataclass
class AgentLedger:
    """The study's record of agent calls: totals for summaries, entries for traces."""

    calls: list[AgentCall] = field(default_factory=list)

    def totals(self) -> dict[str, Any]:
        """Calls, tokens in and out, dollars (None when any price is unknown), seconds."""
        costs = [c.cost_usd for c in self.calls]
        return {
            "calls": len(self.calls),
            "failed_calls": sum(1 for c in self.calls if not c.ok),
            "prompt_tokens": sum(c.prompt_tokens for c in self.calls),
            "completion_tokens": sum(c.completion_tokens for c in self.calls),
            "cost_usd": None
            if any(c is None for c in costs)
            else float(sum(c or 0 for c in costs)),
            "latency_s": float(sum(c.latency_s for c in self.calls)),
        }


class LedgeredAgent(Agent):
    """Wraps the study's agent: every call goes into the ledger and, via ``record``, the trace."""

    def __init__(
        self, inner: Agent, ledger: AgentLedger, record: Callable[[dict[str, Any]], None]
    ) -> None:
        self.inner = inner
        self.spec = inner.spec
        self.is_llm = inner.is_llm
        self.ledger = ledger
        self._record = record

    def ask(self, question: AgentQuestion) -> AgentReply:
        """Ask the wrapped agent and record the call, failed or not."""
        started = time.perf_counter()
        try:
            reply = self.inner.ask(question)
        except AgentError as exc:
            call = AgentCall(
                question.kind, 0, 0, 0.0, time.perf_counter() - started, False, str(exc)
            )
            self.ledger.calls.append(call)
            self._record({"type": "agent_call", **call.to_json()})
            raise
        call = AgentCall(
            question.kind,
            reply.prompt_tokens,
            reply.completion_tokens,
            reply.cost_usd,
            reply.latency_s,
            True,
        )
        self.ledger.calls.append(call)
        self._record({"type": "agent_call", **call.to_json()})
        return reply

    def note(self, record: Mapping[str, Any]) -> None:
        """Record a method's note about its agent (an invalid reply, a fallback) in the trace."""
        self._record({"type": "agent_note", **record})
