"""The ``anthropic`` agent: Claude models through the ``anthropic`` package.

The system message goes in ``system``; JSON is asked for by the prompt's instructions (the
question carries the schema). Transient errors (connection, rate limit, overload, 5xx) are
retried with exponential backoff, a timeout is not; tokens come from ``usage``; the cost from a
small price table (None when unknown); the latency is measured. ``HARNESS_AGENT_TIMEOUT_S``
and ``HARNESS_AGENT_MAX_TOKENS`` override the defaults.

Example:
    >>> AnthropicAgent("claude-3-5-haiku-latest").spec
    'anthropic:claude-3-5-haiku-latest'
"""

from __future__ import annotations

import os
import time
from typing import Any

from harness.agents._base import Agent, AgentError, AgentQuestion, AgentReply
from harness.agents._client import (
    ANTHROPIC_PRICES,
    client_limits,
    import_client,
    price,
    with_retries,
)
from harness.errors import UserError

__all__ = ["AnthropicAgent"]

KEY_VARIABLE = "ANTHROPIC_API_KEY"


class AnthropicAgent(Agent):
    """A Claude model.

    Args:
        model: the model name (``claude-...``).
        max_tokens: most output tokens per reply (default 2048, or
            ``$HARNESS_AGENT_MAX_TOKENS``).
        timeout_s: per request (default 120, or ``$HARNESS_AGENT_TIMEOUT_S``).
        tries: attempts per question on transient errors.
        backoff_s: first wait between attempts (doubling).
    """

    def __init__(
        self,
        model: str,
        max_tokens: int | None = None,
        timeout_s: float | None = None,
        tries: int = 3,
        backoff_s: float = 1.0,
    ) -> None:
        self.anthropic = import_client("anthropic", "anthropic")
        self.model = model
        self.spec = f"anthropic:{model}"
        self.max_tokens, self.timeout_s = client_limits(max_tokens, timeout_s)
        self.tries, self.backoff_s = tries, backoff_s
        self._client: Any = None

    def check(self) -> None:
        """The API key must be set, before any budget is spent.

        Raises:
            UserError: ``ANTHROPIC_API_KEY`` is not set.
        """
        if not os.environ.get(KEY_VARIABLE):
            raise UserError(f"agent {self.spec}: {KEY_VARIABLE} is not set (export it)")

    def ask(self, question: AgentQuestion) -> AgentReply:
        """One message (see the module docstring)."""
        if self._client is None:
            key = os.environ.get(KEY_VARIABLE)
            if not key:
                raise AgentError(f"{KEY_VARIABLE} is not set")
            self._client = self.anthropic.Anthropic(
                api_key=key, timeout=self.timeout_s, max_retries=0
            )
        client, errors = self._client, self.anthropic
        transient = (errors.RateLimitError, errors.InternalServerError)
        system = "\n\n".join(m["content"] for m in question.messages if m["role"] == "system")
        chat = [dict(m) for m in question.messages if m["role"] != "system"]

        def call() -> Any:
            return client.messages.create(
                model=self.model, max_tokens=self.max_tokens, system=system, messages=chat
            )

        started = time.perf_counter()
        response = with_retries(
            call, transient, self.tries, self.backoff_s, connection=errors.APIConnectionError,
            timeout=errors.APITimeoutError,
        )  # fmt: skip
        latency = time.perf_counter() - started
        text = "".join(getattr(block, "text", "") for block in response.content)
        usage = getattr(response, "usage", None)
        prompt_tokens = int(getattr(usage, "input_tokens", 0) or 0)
        output_tokens = int(getattr(usage, "output_tokens", 0) or 0)
        cost = price(self.model, ANTHROPIC_PRICES, prompt_tokens, output_tokens)
        return AgentReply(text, prompt_tokens, output_tokens, cost, latency)
