"""The retry policy's delays and the limiter's record of start times."""

from __future__ import annotations

import random

from beamsearch.errors import InvalidAnswer, RetryableError
from beamsearch.limits import RETRY_AFTER_CEILING_S, RetryPolicy, ServiceLimiter


def test_the_servers_retry_after_is_honoured_beyond_backoff_max() -> None:
    policy = RetryPolicy(5, initial=1.0, maximum=60.0, rng=random.Random(0))
    assert policy.delay(1, RetryableError("rate limited", retry_after=90.0)) == 90.0  # not cut to 60
    assert policy.delay(3, RetryableError("rate limited", retry_after=0.25)) == 0.25
    assert policy.delay(1, RetryableError("rate limited", retry_after=-3.0)) == 0.0
    # only a nonsense value is cut, at the documented hard ceiling
    assert policy.delay(1, RetryableError("rate limited", retry_after=86_400.0)) == RETRY_AFTER_CEILING_S == 600.0


def test_our_own_backoff_stays_within_backoff_max() -> None:
    policy = RetryPolicy(10, initial=1.0, maximum=4.0, rng=random.Random(1))
    delays = [policy.delay(attempt, InvalidAnswer("not JSON")) for attempt in range(1, 9)]
    assert all(0.5 <= d <= 4.0 for d in delays)
    assert all(2.0 <= d for d in delays[3:])  # the ceiling doubled up to the maximum, then half to all of it
    assert 0.5 <= policy.delay(1, None) <= 1.0


async def test_the_limiter_keeps_every_start_and_the_rate_it_promises() -> None:
    limiter = ServiceLimiter("text", concurrency=4, rpm=6000.0, window_s=0.05)  # 5 starts per 0.05 s
    allowed, period = 5, 0.05
    for _ in range(12):
        async with limiter.slot():
            pass
    starts = limiter.starts
    assert len(starts) == limiter.started == 12 and starts == sorted(starts)
    assert all(starts[i + allowed] - starts[i] >= period - 1e-6 for i in range(len(starts) - allowed))
    unlimited = ServiceLimiter("image", concurrency=2, rpm=None)
    async with unlimited.slot():
        pass
    assert len(unlimited.starts) == 1
