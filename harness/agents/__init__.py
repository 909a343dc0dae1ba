"""Agents that LLM-based methods consult: ``rules`` (offline, default), ``openai``, ``anthropic``.

Agent specs, as ``--agent`` takes them:

- ``rules``: the deterministic offline agent that applies PAPER.md's insights and rules;
- ``openai:MODEL``: the OpenAI API (key in ``OPENAI_API_KEY``);
- ``openai:MODEL@http://HOST:PORT/v1``: any OpenAI-compatible server (vLLM, Ollama, llama.cpp,
  SGLang); no key needed unless the server wants one;
- ``anthropic:MODEL``: the Anthropic API (key in ``ANTHROPIC_API_KEY``).

Example:
    >>> parse_agent_spec("openai:qwen2.5@http://127.0.0.1:8080/v1")
    AgentSpec(provider='openai', model='qwen2.5', base_url='http://127.0.0.1:8080/v1')
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlparse

from harness.agents._base import (
    Agent,
    AgentCall,
    AgentError,
    AgentLedger,
    AgentQuestion,
    AgentReply,
    LedgeredAgent,
)
from harness.errors import ConfigError

__all__ = [
    "DEFAULT_AGENT",
    "Agent",
    "AgentCall",
    "AgentError",
    "AgentLedger",
    "AgentQuestion",
    "AgentReply",
    "AgentSpec",
    "LedgeredAgent",
    "load_agent",
    "parse_agent_spec",
]

DEFAULT_AGENT = "rules"
PROVIDERS = ("rules", "openai", "anthropic")


@dataclass(frozen=True)
class AgentSpec:
    """A parsed ``--agent`` value."""

    provider: str
    model: str | None = None
    base_url: str | None = None


def parse_agent_spec(spec: str) -> AgentSpec:
    """Parse an agent spec (see the module docstring).

    Raises:
        ConfigError: an unknown provider, a missing model, or a malformed base URL.
    """
    text = spec.strip()
    if text == "rules":
        return AgentSpec("rules")
    provider, sep, rest = text.partition(":")
    if not sep or provider not in PROVIDERS or provider == "rules":
        raise ConfigError(
            f"unknown agent {spec!r}: expected rules, openai:MODEL, "
            "openai:MODEL@http://HOST:PORT/v1 or anthropic:MODEL"
        )
    model, at, url = rest.partition("@")
    if not model.strip():
        raise ConfigError(f"agent {spec!r}: no model name after '{provider}:'")
    if not at:
        return AgentSpec(provider, model.strip())
    if provider != "openai":
        raise ConfigError(
            f"agent {spec!r}: a base URL is supported for openai-compatible servers only"
        )
    parsed = urlparse(url.strip())
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(
            f"agent {spec!r}: base URL {url!r} is not an http(s)://HOST[:PORT]/PATH URL"
        )
    return AgentSpec(provider, model.strip(), url.strip())


def load_agent(spec: str) -> Agent:
    """A new agent from its spec; clients load lazily, so a missing optional package is one line.

    Raises:
        ConfigError: a malformed spec.
        UserError: the client package is missing (with the pip command to install it).
    """
    parsed = parse_agent_spec(spec)
    if parsed.provider == "rules":
        from harness.agents._rules import RulesAgent

        return RulesAgent()
    if parsed.provider == "openai":
        from harness.agents._openai import OpenAIAgent

        return OpenAIAgent(parsed.model or "", parsed.base_url)
    from harness.agents._anthropic import AnthropicAgent

    return AnthropicAgent(parsed.model or "")
