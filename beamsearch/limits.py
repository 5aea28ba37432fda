"""Per-service concurrency caps, request rates and shared pauses, plus the retry policy.

asyncio-throttle limits how often calls *start*; a semaphore limits how many *run*. Waiters queue on a
lock before the throttler so that only one of them polls it (the throttler sleeps in 10 ms steps, and
hundreds of pollers would burn CPU for nothing) and so that they start in arrival order.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from asyncio_throttle import Throttler

from beamsearch.errors import RetryableError


def rate_window(rpm: float, window_s: float) -> tuple[int, float]:
    """How an rpm is enforced: at most `allowed` starts in any `period` seconds, `allowed` being the
    starts the rpm admits in `window_s` (at least one), and `period` the time the rpm gives them."""
    allowed = max(1, int(rpm * window_s / 60.0))
    return allowed, allowed * 60.0 / rpm


class ServiceLimiter:
    """One service's gatekeeper: a shared pause after a 429, a concurrency cap and a start rate."""

    def __init__(self, name: str, concurrency: int, rpm: float | None, window_s: float = 10.0) -> None:
        self.name = name
        self.concurrency = concurrency
        self.rpm = rpm
        self._semaphore = asyncio.Semaphore(concurrency)
        self._start_lock = asyncio.Lock()
        self._throttler: Throttler | None = None
        self._window: tuple[int, float] | None = None
        if rpm is not None:
            self._window = rate_window(rpm, window_s)
            self._throttler = Throttler(rate_limit=self._window[0], period=self._window[1], retry_interval=0.005)
        self._paused_until = 0.0
        self.in_flight = 0
        self.started = 0
        self.starts: list[float] = []  # time.monotonic() of every call let through, so the rate can be checked

    def pause(self, seconds: float) -> None:
        """Hold every new call of this service for `seconds` (the longest pause asked for wins)."""
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    async def _keep_own_window(self) -> None:
        """`starts` is our own record of the rate (the throttler's log is private to it). A reading of the
        clock a moment after the throttler's own could put `allowed + 1` starts a hair inside one period,
        so the record is held to the same promise: wait out any such hair (microseconds, in practice)."""
        assert self._window is not None
        allowed, period = self._window
        if len(self.starts) >= allowed:
            while (wait := self.starts[-allowed] + period - time.monotonic()) > 0:
                await asyncio.sleep(wait)

    async def _wait_for_pause(self) -> None:
        while (left := self._paused_until - time.monotonic()) > 0:
            await asyncio.sleep(left)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        await self._wait_for_pause()
        async with self._semaphore:
            if self._throttler is not None:
                async with self._start_lock:
                    await self._wait_for_pause()
                    await self._throttler.acquire()
                    await self._keep_own_window()
                    self.starts.append(time.monotonic())
            else:
                self.starts.append(time.monotonic())
            self.in_flight += 1
            self.started += 1
            try:
                yield
            finally:
                self.in_flight -= 1


# The longest pause a server's Retry-After may impose. The advice is followed even when it exceeds
# `backoff_max` (which bounds only our own guesses): retrying sooner than a rate limiter asks earns another
# 429 and keeps the whole service paused. The ceiling guards against a nonsense value (hours, days) that
# would hang the run; a run that must wait that long is better stopped and resumed.
RETRY_AFTER_CEILING_S = 600.0


class RetryPolicy:
    """Exponential backoff with full jitter, overridden by the server's own advice when it gives one
    (up to RETRY_AFTER_CEILING_S, whatever `maximum` is)."""

    def __init__(self, max_attempts: int, initial: float, maximum: float, rng: random.Random | None = None) -> None:
        self.max_attempts = max_attempts
        self.initial = initial
        self.maximum = maximum
        self._rng = rng or random.Random()

    def delay(self, attempt: int, error: BaseException | None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        advised = getattr(error, "retry_after", None) if isinstance(error, RetryableError) else None
        if advised is not None:
            return min(max(0.0, advised), RETRY_AFTER_CEILING_S)
        ceiling = min(self.maximum, self.initial * (2 ** (attempt - 1)))
        return self._rng.uniform(ceiling / 2, ceiling)
