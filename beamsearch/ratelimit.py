"""What a server says about its request rate limit, and how many calls that lets start now.

OpenAI (and compatible servers that copy it) send three headers with every answer, 429s included:

    x-ratelimit-limit-requests      requests allowed per minute (the account's RPM for this model)
    x-ratelimit-remaining-requests  requests left right now
    x-ratelimit-reset-requests      time until the budget is whole again, as "1s", "6m0s", "20ms", "1h2m3.5s"

The provider parses them (`advice_from_headers`) into a `RateAdvice` stamped with the `time.monotonic()`
of the answer, and hands it on in two places: a successful result's `meta["ratelimit"]` (plain data,
`RateAdvice.as_meta()`, so it is also written to the run's log) and, for a 429, the
`RetryableError.ratelimit` attribute (the `RateAdvice` itself). Nothing here sleeps or keeps state: the
limiter that uses the advice owns the clock and the count of starts.

How the limiter uses it (`limits.ServiceLimiter.advise`, fed by the gate; never by providers):

    advice = RateAdvice.from_meta(result.meta.get("ratelimit"), observed_at=time.monotonic())  # or
    advice = error.ratelimit                                        # on a RetryableError from a 429
    latest = newest(latest, advice)                                 # keep the most recent advice per service
    # before each start: count the starts made since `latest.observed_at`, then
    allowed = admissible(latest, rpm=configured_rpm, started_since=starts_since, now=time.monotonic())
    # allowed is None (nothing limits), 0 (wait `wait_s(...)` seconds, then ask again) or > 0 (start now)

The server's advice can only tighten the configured limit, never loosen it: `admissible` is at most
the configured rpm (the whole minute's budget, which a 60 s window admits at once), whatever the server
says its limit is.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

LIMIT_HEADER = "x-ratelimit-limit-requests"
REMAINING_HEADER = "x-ratelimit-remaining-requests"
RESET_HEADER = "x-ratelimit-reset-requests"
MINUTE = 60.0

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_duration(text: str | None) -> float | None:
    """Seconds in OpenAI's duration format ("1s", "6m0s", "20ms", "1h2m3.5s", "0.5s") or a bare number
    of seconds; None for anything else (a malformed header is ignored, never fatal)."""
    if text is None:
        return None
    text = text.strip().lower()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        parts = _DURATION.findall(text)
        if not parts or "".join(number + unit for number, unit in parts) != text:
            return None
        seconds = sum(float(number) * _UNITS[unit] for number, unit in parts)
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _count(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return int(value) if math.isfinite(value) and value >= 0 else None


@dataclass(frozen=True)
class RateAdvice:
    """One answer's view of the request budget. Any field may be missing (servers send some or none)."""

    limit: int | None  # requests per minute the server allows
    remaining: int | None  # requests left when the answer was sent
    reset_s: float | None  # seconds until the budget is whole again
    observed_at: float  # time.monotonic() when the answer arrived

    def as_meta(self) -> dict[str, Any]:
        """Plain data for a result's meta (and the run log); the clock reading stays out of it."""
        return {"limit": self.limit, "remaining": self.remaining, "reset_s": self.reset_s}

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any] | None, observed_at: float) -> RateAdvice | None:
        """The advice back from `as_meta()` data, stamped with when the caller received it."""
        if not isinstance(meta, Mapping):
            return None
        limit, remaining = _count(_text(meta.get("limit"))), _count(_text(meta.get("remaining")))
        reset = meta.get("reset_s")
        reset_s = float(reset) if isinstance(reset, int | float) and math.isfinite(reset) and reset >= 0 else None
        if limit is None and remaining is None and reset_s is None:
            return None
        return cls(limit, remaining, reset_s, observed_at)

    def available(self, now: float) -> float | None:
        """Requests the server would accept at `now`, before counting starts made since the advice:
        `remaining`, refilled linearly until it is whole at `observed_at + reset_s` (without a reset
        time, at `limit` per minute). None when the advice says nothing about the count, or is
        expired: past its reset the server counts afresh, and a limiter that waited on stale advice
        would never start the call whose answer brings fresh advice."""
        if self.remaining is None or self.expired(now):
            return None
        if self.limit is None:
            return float(self.remaining)
        missing = max(0, self.limit - self.remaining)
        elapsed = max(0.0, now - self.observed_at)
        if self.reset_s is not None:
            refill = missing * min(1.0, elapsed / self.reset_s)
        else:
            refill = min(missing, elapsed * self.limit / MINUTE)
        return self.remaining + refill

    def expired(self, now: float) -> bool:
        """Past its reset (or a minute, without one): the budget it describes is whole again."""
        horizon = self.reset_s if self.reset_s is not None else MINUTE
        return now >= self.observed_at + horizon


def _text(value: Any) -> str | None:
    return None if value is None or isinstance(value, bool) else str(value)


def advice_from_headers(headers: Mapping[str, str] | None, observed_at: float) -> RateAdvice | None:
    """The advice in an answer's headers (case-insensitive mappings, e.g. httpx2.Headers), or None when
    the server sent none of the three."""
    if headers is None:
        return None
    limit = _count(headers.get(LIMIT_HEADER))
    remaining = _count(headers.get(REMAINING_HEADER))
    reset_s = parse_duration(headers.get(RESET_HEADER))
    if limit is None and remaining is None and reset_s is None:
        return None
    return RateAdvice(limit, remaining, reset_s, observed_at)


def newest(current: RateAdvice | None, new: RateAdvice | None) -> RateAdvice | None:
    """The advice to keep: the later one (answers overtake each other, so compare arrival times)."""
    if current is None:
        return new
    if new is None:
        return current
    return new if new.observed_at >= current.observed_at else current


def admissible(advice: RateAdvice | None, rpm: float | None, started_since: int, now: float) -> int | None:
    """How many calls may start at `now`: the server's available budget less the `started_since` calls
    started after the advice was observed (the server had not counted them yet), never more than the
    configured `rpm` (a minute's budget) nor than the server's own limit. None when neither the
    configuration nor the advice limits anything."""
    caps: list[float] = []
    if rpm is not None:
        caps.append(float(rpm))
    if advice is not None:
        if advice.limit is not None:
            caps.append(float(advice.limit))
        available = advice.available(now)
        if available is not None:
            caps.append(available - started_since)
    if not caps:
        return None
    return max(0, math.floor(min(caps)))


def wait_s(advice: RateAdvice | None, started_since: int, now: float) -> float:
    """Seconds until the server's budget has room for one more start (0 when it has room now, or when
    the advice is missing or expired), by the same refill model as `RateAdvice.available`."""
    if advice is None:
        return 0.0
    available = advice.available(now)
    if available is None or available - started_since >= 1:
        return 0.0
    until_reset = max(0.0, advice.observed_at + (advice.reset_s if advice.reset_s is not None else MINUTE) - now)
    if advice.limit is None or advice.remaining is None:
        return until_reset
    missing = max(0, advice.limit - advice.remaining)
    needed = started_since + 1 - advice.remaining  # refilled requests needed for one more start
    if needed > missing:  # more starts since the advice than its whole budget: only the reset helps
        return until_reset
    fill_s = advice.reset_s if advice.reset_s is not None else missing * MINUTE / advice.limit
    return min(until_reset, max(0.0, advice.observed_at + fill_s * needed / missing - now))
