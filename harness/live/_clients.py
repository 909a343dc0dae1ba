"""One provider's asyncio client: limits, retries with backoff and jitter, a clear last error.

:class:`ProviderClient` wraps the ``openai`` SDK (OpenAI and every OpenAI-compatible server) or
the ``anthropic`` SDK with the SDK's own retries turned off, so that the harness owns them:

- every call waits for a slot of the provider's :class:`~harness.live._limits.RateLimiter`;
- a 429, a 5xx (and 408, 409, Anthropic's 529), a timeout or a connection error is retried up
  to ``max_retries`` times after ``uniform(0, min(max_backoff_s, backoff_s * 2**k))`` seconds
  ("full jitter"), or the server's ``Retry-After`` when that is longer;
- any other error (400, 401, 404: a request that would fail again) is not retried;
- every failed attempt becomes an event (for the study's trace) and the last one a
  :class:`~harness.errors.CallError` naming the provider, model, attempts and error.

Latency is the wall time of the attempt that succeeded (what the model took), not counting
waits for limits or retries; a cached call is charged the same figure.

Example:
    >>> backoff_delay(0, 1.0, 60.0, random.Random(0)) <= 1.0
    True
    >>> backoff_delay(10, 1.0, 60.0, random.Random(0)) <= 60.0
    True
"""

from __future__ import annotations

import importlib
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.errors import CallError, UserError
from harness.live._limits import RateLimiter
from harness.live.providers import KEYLESS_API_KEY, Provider, Route

__all__ = ["Completion", "ProviderClient", "backoff_delay"]

# Statuses worth a retry besides 429 and 5xx: 408 request timeout, 409 conflict (the OpenAI SDK
# retries both too), 529 Anthropic's "overloaded".
_RETRY_STATUSES = frozenset({408, 409, 429})


@dataclass(frozen=True)
class Completion:
    """One reply: its text, token counts and the measured latency of the successful attempt."""

    text: str
    prompt_tokens: int
    output_tokens: int
    latency_s: float


def backoff_delay(attempt: int, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Seconds to wait before retry ``attempt + 1`` (exponential backoff, full jitter)."""
    return rng.uniform(0.0, min(cap_s, base_s * 2.0**attempt))


class _Transient(Exception):
    """A failed attempt worth repeating."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProviderClient:
    """Calls to one provider, shared by every model it serves.

    Args:
        provider: the provider's settings.
        api_key: its key (None for a key-less server).
        on_event: receives one dict per failed attempt (``kind`` is ``call_retry`` or
            ``call_failed``).
        rng: the jitter's random numbers (timing only: they never change an answer).
    """

    def __init__(
        self,
        provider: Provider,
        api_key: str | None,
        on_event: Callable[[dict[str, Any]], None],
        rng: random.Random,
    ) -> None:
        self.provider = provider
        self.limiter = RateLimiter(
            provider.concurrency, provider.requests_per_minute, provider.tokens_per_minute
        )
        self.on_event = on_event
        self.rng = rng
        self.calls = 0
        self._sdk = _import_sdk(provider.type)
        if provider.type == "openai":
            self._client: Any = self._sdk.AsyncOpenAI(
                base_url=provider.base_url,
                api_key=api_key or KEYLESS_API_KEY,
                max_retries=0,
                timeout=provider.timeout_s,
            )
        else:
            extra = {"base_url": provider.base_url} if provider.base_url else {}
            self._client = self._sdk.AsyncAnthropic(
                api_key=api_key, max_retries=0, timeout=provider.timeout_s, **extra
            )

    async def complete(
        self,
        route: Route,
        messages: Sequence[Mapping[str, str]],
        params: Mapping[str, Any],
        seed: int | None,
        where: str,
    ) -> Completion:
        """One chat completion, retried as the module docstring says.

        Args:
            route: the model and provider.
            messages: the chat messages.
            params: output-changing generation parameters (temperature, top_p, max_tokens, stop).
            seed: a per-sample seed to send (None: send none).
            where: what the call is for, named in events and errors (model, node, question).

        Raises:
            CallError: the last attempt failed, or an error that no retry would fix.
        """
        provider = self.provider
        expected = sum(len(m.get("content", "")) for m in messages) / 4 + params["max_tokens"]
        attempts = provider.max_retries + 1
        for attempt in range(attempts):
            async with self.limiter.slot(expected):
                started = time.perf_counter()
                try:
                    self.calls += 1
                    completion = await self._once(route, messages, params, seed)
                except Exception as exc:
                    error: BaseException = exc
                    transient = self._classify(exc)
                else:
                    latency = time.perf_counter() - started
                    return Completion(
                        completion.text,
                        completion.prompt_tokens,
                        completion.output_tokens,
                        latency,
                    )
            last = attempt == attempts - 1
            event = {
                "kind": "call_failed" if last or transient is None else "call_retry",
                "provider": provider.name,
                "model": route.model,
                "call": where,
                "attempt": attempt + 1,
                "error": str(transient) if transient is not None else _describe(error),
            }
            self.on_event(event)
            if transient is None:
                raise CallError(
                    f"{provider.name} ({route.model_id}) {where}: {_describe(error)} (not retried)"
                )
            if last:
                raise CallError(
                    f"{provider.name} ({route.model_id}) {where}: {transient} after "
                    f"{attempts} attempt{'s' if attempts > 1 else ''}"
                )
            delay = backoff_delay(attempt, provider.backoff_s, provider.max_backoff_s, self.rng)
            if transient.retry_after is not None:
                delay = max(delay, min(transient.retry_after, provider.max_backoff_s))
            await _sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _once(
        self,
        route: Route,
        messages: Sequence[Mapping[str, str]],
        params: Mapping[str, Any],
        seed: int | None,
    ) -> Completion:
        if self.provider.type == "openai":
            extra: dict[str, Any] = {"seed": seed} if seed is not None else {}
            if params.get("stop") is not None:
                extra["stop"] = params["stop"]
            reply = await self._client.chat.completions.create(
                model=route.model_id,
                messages=list(messages),
                temperature=params["temperature"],
                top_p=params["top_p"],
                max_tokens=params["max_tokens"],
                **extra,
            )
            text = (reply.choices[0].message.content or "") if reply.choices else ""
            usage = reply.usage
            prompt = usage.prompt_tokens if usage else None
            output = usage.completion_tokens if usage else None
        else:
            system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
            chat = [dict(m) for m in messages if m["role"] != "system"]
            extra = {"system": system} if system else {}
            if params.get("stop") is not None:
                stop = params["stop"]
                extra["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
            # Newer Claude models refuse temperature and top_p together: send top_p only when
            # it restricts sampling.
            if params["top_p"] != 1.0:
                extra["top_p"] = params["top_p"]
            reply = await self._client.messages.create(
                model=route.model_id,
                messages=chat,
                temperature=params["temperature"],
                max_tokens=params["max_tokens"],
                **extra,
            )
            text = "".join(getattr(block, "text", "") for block in reply.content)
            prompt, output = reply.usage.input_tokens, reply.usage.output_tokens
        # A server that reports no usage gets the usual four-characters-per-token estimate.
        if prompt is None:
            prompt = round(sum(len(m["content"]) for m in messages) / 4)
        if output is None:
            output = round(len(text) / 4)
        return Completion(text, int(prompt), int(output), 0.0)

    def _classify(self, exc: BaseException) -> _Transient | None:
        sdk = self._sdk
        if isinstance(exc, sdk.APITimeoutError):
            return _Transient(f"timeout after {self.provider.timeout_s:g} s")
        if isinstance(exc, sdk.APIConnectionError):
            return _Transient(f"connection error ({exc})")
        if isinstance(exc, sdk.APIStatusError):
            status = int(exc.status_code)
            if status in _RETRY_STATUSES or status >= 500:
                return _Transient(f"HTTP {status}", _retry_after(exc))
        return None

    async def aclose(self) -> None:
        """Close the SDK's connection pool."""
        await self._client.close()


def _retry_after(exc: Any) -> float | None:
    response = getattr(exc, "response", None)
    raw = response.headers.get("retry-after") if response is not None else None
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None  # an HTTP date: rare from LLM servers; the backoff applies instead


def _describe(exc: BaseException) -> str:
    status = getattr(exc, "status_code", None)
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"HTTP {status}: {text}" if status is not None else f"{type(exc).__name__}: {text}"


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


def _import_sdk(kind: str) -> Any:
    module = "openai" if kind == "openai" else "anthropic"
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(
            f"the live backend needs the {module!r} package: pip install {module}"
        ) from None
