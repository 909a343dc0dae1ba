"""Per-provider limits for asyncio calls: calls in flight, requests and tokens per minute.

A provider's limits are shared by every call to it, whatever the model; the live backend keeps
one :class:`RateLimiter` per provider. Requests and tokens per minute are token buckets that
start full (a provider allows a burst up to its per-minute limit) and refill continuously.

Example:
    >>> import asyncio
    >>> limiter = RateLimiter(concurrency=2, requests_per_minute=600)
    >>> async def call(i):
    ...     async with limiter.slot(tokens=100):
    ...         await asyncio.sleep(0.01)
    ...         return i
    >>> async def five():
    ...     return await asyncio.gather(*(call(i) for i in range(5)))
    >>> asyncio.run(five())
    [0, 1, 2, 3, 4]
    >>> limiter.peak_in_flight <= 2
    True
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

__all__ = ["RateLimiter"]


class _Bucket:
    """A token bucket of ``per_minute`` units that refills at ``per_minute / 60`` per second."""

    def __init__(self, per_minute: float, clock: Callable[[], float]) -> None:
        self.capacity = float(per_minute)
        self.level = float(per_minute)
        self.rate = per_minute / 60.0
        self.clock = clock
        self.stamp = clock()

    def refill(self) -> None:
        now = self.clock()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait_for(self, amount: float) -> float:
        """Seconds until ``amount`` is available (0 when it is now)."""
        # A single request larger than the whole bucket waits for a full bucket, then goes:
        # refusing it forever would deadlock the study.
        amount = min(amount, self.capacity)
        return max(0.0, (amount - self.level) / self.rate)

    def take(self, amount: float) -> None:
        self.level -= min(amount, self.capacity)


class RateLimiter:
    """Concurrency, requests-per-minute and tokens-per-minute limits of one provider.

    Args:
        concurrency: most calls in flight at once.
        requests_per_minute: most calls started per minute (None: no limit).
        tokens_per_minute: most tokens (prompt + expected output) per minute (None: no limit).
        clock: monotonic seconds (injectable for tests).

    Attributes:
        in_flight: calls in flight now.
        peak_in_flight: the most calls that were ever in flight at once.
        waited_s: total seconds calls waited for the per-minute limits.
    """

    def __init__(
        self,
        concurrency: int,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self.concurrency = concurrency
        self._requests = _Bucket(requests_per_minute, clock) if requests_per_minute else None
        self._tokens = _Bucket(tokens_per_minute, clock) if tokens_per_minute else None
        # Created lazily: an asyncio primitive belongs to the loop that first uses it.
        self._semaphore: asyncio.Semaphore | None = None
        self._lock: asyncio.Lock | None = None
        self.in_flight = 0
        self.peak_in_flight = 0
        self.waited_s = 0.0

    async def _admit(self, tokens: float) -> None:
        buckets = [b for b in (self._requests, self._tokens) if b is not None]
        if not buckets:
            return
        assert self._lock is not None
        # One waiter at a time: calls are admitted in arrival order and never overtake.
        async with self._lock:
            while True:
                for bucket in buckets:
                    bucket.refill()
                wait = max(
                    self._requests.wait_for(1) if self._requests else 0.0,
                    self._tokens.wait_for(tokens) if self._tokens else 0.0,
                )
                if wait <= 0:
                    break
                self.waited_s += wait
                await asyncio.sleep(wait)
            if self._requests:
                self._requests.take(1)
            if self._tokens:
                self._tokens.take(tokens)

    @asynccontextmanager
    async def slot(self, tokens: float = 0.0) -> AsyncIterator[None]:
        """Hold one call slot; ``tokens`` is the call's expected prompt plus output tokens."""
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.concurrency)
            self._lock = asyncio.Lock()
        async with self._semaphore:
            await self._admit(tokens)
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            try:
                yield
            finally:
                self.in_flight -= 1
