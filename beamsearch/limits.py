"""Per-service concurrency caps, request rates and shared pauses, plus the retry policy.

asyncio-throttle limits how often calls *start*; a semaphore limits how many *run*. Waiters queue on a
lock before the throttler so that only one of them polls it (the throttler sleeps in 10 ms steps, and
hundreds of pollers would burn CPU for nothing) and so that they start in arrival order.

The limiter also learns from the server (`ratelimit`): the gate hands it the rate-limit advice of every
answer and of every 429 (`advise`), and a call starts only when the newest advice leaves room for it,
counting the calls started since the advised request began (the server had not counted those yet). The
advice can only hold calls back: the configured rpm stays the ceiling whatever the server says. What the
server reports as its parallelism (`narrow`) can likewise only lower the concurrency cap.
"""

from __future__ import annotations

import asyncio
import bisect
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from asyncio_throttle import Throttler

from beamsearch.errors import RetryableError
from beamsearch.ratelimit import RateAdvice, admissible, newest, wait_s


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
        self._advice: RateAdvice | None = None  # the server's newest word on its request budget
        self._advice_since = 0.0  # when the request that brought it started: later starts are not in it
        self.in_flight = 0
        self.started = 0
        self.starts: list[float] = []  # time.monotonic() of every call let through, so the rate can be checked
        self.held_by_server = 0  # starts that waited for the server's advice (tests and benchmarks read it)
        self._withheld: list[asyncio.Task[bool]] = []  # places of the cap taken away by `narrow`

    def advise(self, advice: RateAdvice | None, started_at: float) -> None:
        """Take the server's advice from an answer (or a 429) to a request started at `started_at`
        (time.monotonic()); the newest advice wins, as answers overtake each other."""
        if advice is None:
            return
        kept = newest(self._advice, advice)
        if kept is advice:
            self._advice, self._advice_since = advice, started_at

    def narrow(self, concurrency: int) -> None:
        """Lower the concurrency cap (never raise it), e.g. to the slots a local server says it has.
        The places taken away are acquired by tasks that never give them back; calls already running
        keep theirs, so the new cap holds once they finish. Call it from the event loop."""
        if 1 <= concurrency < self.concurrency:
            loop = asyncio.get_running_loop()
            self._withheld += [loop.create_task(self._semaphore.acquire())
                               for _ in range(self.concurrency - concurrency)]
            self.concurrency = concurrency

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

    async def _keep_server_budget(self) -> None:
        """Wait while the server's newest advice leaves no room for one more start (see `ratelimit`)."""
        held = False
        while self._advice is not None:
            now = time.monotonic()
            if now - self._advice.observed_at > RETRY_AFTER_CEILING_S:  # a reset of hours: not worth a hung run
                break
            since = len(self.starts) - bisect.bisect_right(self.starts, self._advice_since)
            room = admissible(self._advice, self.rpm, since, now)
            if room is None or room > 0:
                break
            held = True
            await asyncio.sleep(max(0.005, wait_s(self._advice, since, now)))
        self.held_by_server += held

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        await self._wait_for_pause()
        async with self._semaphore:
            if self._throttler is not None or self._advice is not None:
                async with self._start_lock:
                    await self._wait_for_pause()
                    if self._throttler is not None:
                        await self._throttler.acquire()
                        await self._keep_own_window()
                    await self._keep_server_budget()
                    self.starts.append(time.monotonic())
            else:
                self.starts.append(time.monotonic())
            self.in_flight += 1
            self.started += 1
            try:
                yield
            finally:
                self.in_flight -= 1


# The longest pause a server's Retry-After (or its rate-limit advice) may impose. The advice is followed even when it exceeds
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
