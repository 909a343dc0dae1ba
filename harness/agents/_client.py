"""What the LLM clients share: lazy imports, retries with backoff, prices, reachability.

Example:
    >>> price("gpt-4o-mini-2024-07-18", OPENAI_PRICES, 1_000_000, 0)
    0.15
    >>> price("my-local-model", OPENAI_PRICES, 10, 10) is None
    True
"""

from __future__ import annotations

import importlib
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any, TypeVar

from harness.agents._base import AgentError
from harness.errors import UserError

__all__ = [
    "ANTHROPIC_PRICES",
    "OPENAI_PRICES",
    "AgentTimeout",
    "client_limits",
    "import_client",
    "price",
    "probe",
    "with_retries",
]

DEFAULT_MAX_TOKENS = 2048
DEFAULT_TIMEOUT_S = 120.0

T = TypeVar("T")

# USD per million tokens (input, output): approximate list prices, 2025; longest prefix wins.
# A model not listed has an unknown cost (None): the ledger then reports the total as unknown.
OPENAI_PRICES: Mapping[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1": (2.00, 8.00),
    "o3-mini": (1.10, 4.40),
    "o4-mini": (1.10, 4.40),
    "o3": (2.00, 8.00),
}
ANTHROPIC_PRICES: Mapping[str, tuple[float, float]] = {
    "claude-3-haiku": (0.25, 1.25),
    "claude-3-5-haiku": (0.80, 4.00),
    "claude-haiku-4-5": (1.00, 5.00),
    "claude-3-5-sonnet": (3.00, 15.00),
    "claude-3-7-sonnet": (3.00, 15.00),
    "claude-sonnet-4": (3.00, 15.00),
    "claude-opus-4": (15.00, 75.00),
}


class AgentTimeout(AgentError):
    """A request that timed out: repeating it would be as slow, so nobody repeats it."""


def import_client(module: str, package: str) -> ModuleType:
    """Import an optional client package, or fail with one line naming the pip command."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(
            f"the {module!r} package is needed for this agent: pip install {package}"
        ) from None


def client_limits(max_tokens: int | None, timeout_s: float | None) -> tuple[int, float]:
    """Output-token and time limits: as given, else the environment's, else the defaults.

    Raises:
        UserError: ``HARNESS_AGENT_MAX_TOKENS`` or ``HARNESS_AGENT_TIMEOUT_S`` is not a
            positive number.
    """

    def env(name: str, kind: type, default: float) -> Any:
        raw = os.environ.get(name)
        if raw is None:
            return kind(default)
        try:
            value = kind(raw)
        except ValueError:
            value = 0
        if value <= 0:
            raise UserError(f"{name}={raw!r}: expected a positive number")
        return value

    tokens = (
        max_tokens
        if max_tokens is not None
        else env("HARNESS_AGENT_MAX_TOKENS", int, DEFAULT_MAX_TOKENS)
    )
    seconds = (
        timeout_s
        if timeout_s is not None
        else env("HARNESS_AGENT_TIMEOUT_S", float, DEFAULT_TIMEOUT_S)
    )
    return int(tokens), float(seconds)


def price(
    model: str, table: Mapping[str, tuple[float, float]], prompt_tokens: int, output_tokens: int
) -> float | None:
    """Dollars for one call, or None when the model's price is not in ``table``."""
    matches = [key for key in table if model.startswith(key)]
    if not matches:
        return None
    cost_in, cost_out = table[max(matches, key=len)]
    return (prompt_tokens * cost_in + output_tokens * cost_out) / 1e6


def with_retries(
    call: Callable[[], T],
    transient: tuple[type[BaseException], ...],
    tries: int = 3,
    backoff_s: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
    connection: type[BaseException] | None = None,
    timeout: type[BaseException] | None = None,
) -> T:
    """Run ``call``; retry transient errors with exponential backoff; else raise AgentError.

    ``connection`` errors are transient too, except ``timeout`` (in both SDKs a subclass of
    the connection error): a request that timed out is not repeated.
    """
    retry = (*transient, connection) if connection is not None else transient
    for attempt in range(1, tries + 1):
        try:
            return call()
        except retry as exc:
            if timeout is not None and isinstance(exc, timeout):
                raise AgentTimeout(f"{type(exc).__name__}: {exc}") from None
            if attempt == tries:
                raise AgentError(f"{type(exc).__name__} after {tries} tries: {exc}") from None
            sleep(backoff_s * 2 ** (attempt - 1))
        except Exception as exc:
            raise AgentError(f"{type(exc).__name__}: {exc}") from None
    raise AgentError("no tries")  # tries < 1


def probe(base_url: str, timeout_s: float = 3.0) -> None:
    """Fail fast if nothing answers at ``base_url`` (GET ``{base_url}/models``).

    Any HTTP answer, even an error status, shows a server is there.

    Raises:
        UserError: ``agent server URL: not reachable (reason)``.
    """
    url = base_url.rstrip("/") + "/models"  # http(s) only: the spec parser checked it
    try:
        with urllib.request.urlopen(url, timeout=timeout_s):
            return
    except urllib.error.HTTPError:
        return
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UserError(f"agent server {base_url}: not reachable ({reason})") from None
