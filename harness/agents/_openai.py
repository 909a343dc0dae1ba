"""The ``openai`` agent: the OpenAI API or any OpenAI-compatible server (vLLM, Ollama, llama.cpp).

Chat completions in JSON mode (``response_format={"type": "json_object"}``; llama.cpp's server
rejects ``json_schema``, so the schema travels in the prompt, which the question already
carries). A server that rejects JSON mode altogether is asked again without it. Transient
errors (connection, rate limit, 5xx) are retried with exponential backoff; a timeout is not
(a server too slow for a request is as slow the second time; the method's own three tries
still apply). OpenAI's reasoning models (``o1``, ``o3``, ``o4``, ``gpt-5``) get
``max_completion_tokens`` and no temperature. Tokens come from the response's ``usage``; the
cost from a small price table (None when unknown, and for any server given by URL); the
latency is measured. ``HARNESS_AGENT_TIMEOUT_S`` and ``HARNESS_AGENT_MAX_TOKENS`` override the
defaults (for slow local servers, or reasoning models that need room to think).

Example:
    >>> agent = OpenAIAgent("gpt-4o-mini")
    >>> agent.spec, agent.is_llm
    ('openai:gpt-4o-mini', True)
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

from harness.agents._base import Agent, AgentError, AgentQuestion, AgentReply
from harness.agents._client import (
    OPENAI_PRICES,
    client_limits,
    import_client,
    price,
    probe,
    with_retries,
)
from harness.errors import UserError

__all__ = ["OpenAIAgent"]

KEY_VARIABLE = "OPENAI_API_KEY"
_REASONING = re.compile(r"^(o\d|gpt-5)")


class OpenAIAgent(Agent):
    """An OpenAI-compatible chat model.

    Args:
        model: the model name the server knows.
        base_url: an OpenAI-compatible server (``http://HOST:PORT/v1``); None for OpenAI.
        temperature: sampling temperature (0: as repeatable as the server allows).
        max_tokens: most output tokens per reply (default 2048, or
            ``$HARNESS_AGENT_MAX_TOKENS``).
        timeout_s: per request (default 120, or ``$HARNESS_AGENT_TIMEOUT_S``).
        tries: attempts per question on transient errors.
        backoff_s: first wait between attempts (doubling).
    """

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        temperature: float = 0.0,
        max_tokens: int | None = None,
        timeout_s: float | None = None,
        tries: int = 3,
        backoff_s: float = 1.0,
    ) -> None:
        self.openai = import_client("openai", "openai")
        self.model, self.base_url = model, base_url
        self.spec = f"openai:{model}" + (f"@{base_url}" if base_url else "")
        self.temperature = temperature
        self.max_tokens, self.timeout_s = client_limits(max_tokens, timeout_s)
        self.tries, self.backoff_s = tries, backoff_s
        self.reasoning = base_url is None and bool(_REASONING.match(model))
        self.json_mode = True
        self._client: Any = None

    def check(self) -> None:
        """A key for OpenAI, or a server that answers at ``base_url`` (3 s), before any budget.

        Raises:
            UserError: ``OPENAI_API_KEY`` unset (no base URL), or the server not reachable.
        """
        if self.base_url is None:
            if not os.environ.get(KEY_VARIABLE):
                raise UserError(
                    f"agent {self.spec}: {KEY_VARIABLE} is not set (export it, or use a local "
                    "server: openai:MODEL@http://HOST:PORT/v1)"
                )
            return
        probe(self.base_url)

    def _connect(self) -> Any:
        if self._client is None:
            # A local server usually wants no key, but the client insists on one.
            key = os.environ.get(KEY_VARIABLE) or ("not-needed" if self.base_url else None)
            if key is None:
                raise AgentError(f"{KEY_VARIABLE} is not set")
            self._client = self.openai.OpenAI(
                api_key=key, base_url=self.base_url, timeout=self.timeout_s, max_retries=0
            )
        return self._client

    def ask(self, question: AgentQuestion) -> AgentReply:
        """One chat completion (see the module docstring)."""
        client = self._connect()
        errors = self.openai
        transient = (errors.RateLimitError, errors.InternalServerError)
        # APITimeoutError subclasses APIConnectionError: a timeout must not count as transient.
        connection = errors.APIConnectionError

        def call() -> Any:
            kwargs: dict[str, Any] = {
                "model": self.model,
                "messages": [dict(m) for m in question.messages],
            }
            if self.reasoning:
                kwargs["max_completion_tokens"] = self.max_tokens
            else:
                kwargs["temperature"] = self.temperature
                kwargs["max_tokens"] = self.max_tokens
            if self.json_mode:
                kwargs["response_format"] = {"type": "json_object"}
            try:
                return client.chat.completions.create(**kwargs)
            except errors.BadRequestError as exc:
                if not (self.json_mode and "response_format" in str(exc)):
                    raise
                self.json_mode = False  # this server has no JSON mode: instructions only
                del kwargs["response_format"]
                return client.chat.completions.create(**kwargs)

        started = time.perf_counter()
        response = with_retries(
            call, transient, self.tries, self.backoff_s, connection=connection,
            timeout=errors.APITimeoutError,
        )  # fmt: skip
        latency = time.perf_counter() - started
        if not response.choices:
            raise AgentError(f"{self.spec}: the reply has no choices")
        text = response.choices[0].message.content or ""
        usage = getattr(response, "usage", None)
        prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        output_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        cost = None
        if self.base_url is None:
            cost = price(self.model, OPENAI_PRICES, prompt_tokens, output_tokens)
        return AgentReply(text, prompt_tokens, output_tokens, cost, latency)
