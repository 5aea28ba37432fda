"""The server's rate-limit advice: parsing OpenAI's headers, and how many starts it admits (pure)."""

from __future__ import annotations

import pytest

from beamsearch.ratelimit import (
    RateAdvice,
    admissible,
    advice_from_headers,
    newest,
    parse_duration,
    wait_s,
)


@pytest.mark.parametrize(("text", "seconds"), [
    ("1s", 1.0), ("6m0s", 360.0), ("20ms", 0.02), ("1h2m3.5s", 3723.5), ("0.5s", 0.5), ("2", 2.0),
    (" 17ms ", 0.017), ("1m", 60.0),
])
def test_durations_in_openais_format(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", [None, "", "soon", "5x", "1s2", "-1s", "-3", "nan", "inf", "1s 2m"])
def test_a_malformed_duration_is_ignored(text: str | None) -> None:
    assert parse_duration(text) is None


def test_advice_from_headers_reads_the_three_headers_and_ignores_the_rest() -> None:
    headers = {"x-ratelimit-limit-requests": "500", "x-ratelimit-remaining-requests": "499",
               "x-ratelimit-reset-requests": "120ms", "x-ratelimit-limit-tokens": "30000"}
    advice = advice_from_headers(headers, observed_at=10.0)
    assert advice == RateAdvice(limit=500, remaining=499, reset_s=0.12, observed_at=10.0)
    assert advice.as_meta() == {"limit": 500, "remaining": 499, "reset_s": 0.12}
    assert advice_from_headers({"x-ratelimit-limit-tokens": "30000"}, 0.0) is None
    assert advice_from_headers(None, 0.0) is None
    partial = advice_from_headers({"x-ratelimit-remaining-requests": "many", "x-ratelimit-reset-requests": "1s"}, 0.0)
    assert partial == RateAdvice(None, None, 1.0, 0.0)


def test_meta_round_trip_keeps_the_advice_and_refuses_junk() -> None:
    advice = RateAdvice(60, 12, 3.5, observed_at=1.0)
    assert RateAdvice.from_meta(advice.as_meta(), observed_at=5.0) == RateAdvice(60, 12, 3.5, 5.0)
    assert RateAdvice.from_meta(None, 1.0) is None
    assert RateAdvice.from_meta({"limit": None, "remaining": None, "reset_s": None}, 1.0) is None
    assert RateAdvice.from_meta({"limit": True, "remaining": "x", "reset_s": -1}, 1.0) is None


def test_the_budget_refills_until_the_reset() -> None:
    advice = RateAdvice(limit=60, remaining=0, reset_s=60.0, observed_at=100.0)
    assert advice.available(100.0) == 0
    assert advice.available(130.0) == pytest.approx(30.0)
    assert advice.available(159.9) == pytest.approx(59.9)
    assert advice.available(160.0) is None and advice.expired(160.0)  # whole again: the server counts afresh
    no_reset = RateAdvice(limit=60, remaining=10, reset_s=None, observed_at=0.0)
    assert no_reset.available(10.0) == pytest.approx(20.0)  # a minute's rate: one per second


def test_admissible_never_exceeds_the_configured_rpm() -> None:
    generous = RateAdvice(limit=5000, remaining=4999, reset_s=0.012, observed_at=0.0)
    assert admissible(generous, rpm=50, started_since=0, now=0.0) == 50
    assert admissible(None, rpm=50, started_since=0, now=0.0) == 50
    assert admissible(None, rpm=None, started_since=0, now=0.0) is None
    server_limit = RateAdvice(limit=20, remaining=None, reset_s=None, observed_at=0.0)
    assert admissible(server_limit, rpm=50, started_since=0, now=0.0) == 20  # the server's limit is lower


def test_admissible_counts_the_starts_the_server_has_not_seen_yet() -> None:
    advice = RateAdvice(limit=60, remaining=3, reset_s=57.0, observed_at=0.0)
    assert admissible(advice, rpm=60, started_since=0, now=0.0) == 3
    assert admissible(advice, rpm=60, started_since=2, now=0.0) == 1
    assert admissible(advice, rpm=60, started_since=5, now=0.0) == 0
    assert admissible(advice, rpm=60, started_since=5, now=57.0) == 60  # past the reset: the configured cap
    assert admissible(advice, rpm=None, started_since=0, now=0.0) == 3


def test_wait_follows_the_refill() -> None:
    empty = RateAdvice(limit=60, remaining=0, reset_s=60.0, observed_at=0.0)
    assert wait_s(empty, started_since=0, now=0.0) == pytest.approx(1.0)  # one request back per second
    assert wait_s(empty, started_since=2, now=0.5) == pytest.approx(2.5)
    assert wait_s(empty, started_since=100, now=0.0) == pytest.approx(60.0)  # only the reset helps
    assert wait_s(RateAdvice(60, 5, 1.0, 0.0), started_since=0, now=0.0) == 0.0
    assert wait_s(None, started_since=10, now=0.0) == 0.0
    assert wait_s(RateAdvice(None, 0, 2.0, 0.0), started_since=0, now=0.5) == pytest.approx(1.5)


def test_newest_keeps_the_latest_answer() -> None:
    old, new = RateAdvice(60, 1, 1.0, 1.0), RateAdvice(60, 50, 1.0, 2.0)
    assert newest(old, new) is new and newest(new, old) is new
    assert newest(None, old) is old and newest(old, None) is old
