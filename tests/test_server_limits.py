"""The limiter learns from the server (issues 13 and 17): it keeps to the rate-limit headers of a
rate-limited server (a token bucket in the loopback server, counted at the server), never above the
configured rpm; it caps a role's concurrency to the slots a local server reports; and time queued at
beamsearch's own limiter neither counts against an attempt's timeout nor hides in its `elapsed`."""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake_openai_server import FakeConfig, FakeOpenAI  # noqa: E402

from beamsearch.app import start_run  # noqa: E402
from beamsearch.config import RoleSettings  # noqa: E402
from beamsearch.costs import Budget  # noqa: E402
from beamsearch.gate import Gate, StepAnswer  # noqa: E402
from beamsearch.limits import RETRY_AFTER_CEILING_S, RetryPolicy, ServiceLimiter  # noqa: E402
from beamsearch.precedence import resolve  # noqa: E402
from beamsearch.providers.base import TextRequest  # noqa: E402
from beamsearch.providers.openai import build_role  # noqa: E402
from beamsearch.providers.openai_slots import ask_slots, is_local, root_of  # noqa: E402
from beamsearch.ratelimit import RateAdvice  # noqa: E402

KEY_ENV = "FAKE_OPENAI_LIMITS_KEY"
KEY = "sk-limits-9z8y7x6w5v4u3t2s1r"


@pytest.fixture(autouse=True)
def keyed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)


def gate_for(limiter: ServiceLimiter, max_attempts: int = 1, timeout: float | None = None) -> tuple[Gate, list[Any]]:
    steps: list[Any] = []
    gate = Gate(limiters={"text": limiter}, policy=RetryPolicy(max_attempts, 0.01, 0.02, random.Random(0)),
                budget=Budget(None), prices={}, models={"text": "m"}, recorded={}, record=steps.append,
                timeouts={"text": timeout})
    return gate, steps


def asking(role: Any, n: int) -> Any:
    async def attempt() -> StepAnswer:
        answer = await role.complete(TextRequest(key=f"k{n}", task="combine", system="Combine.", user=f"Label: {n}"))
        return StepAnswer({"text": answer.text}, answer.usage, answer.meta)

    return attempt


# --- rate-limit advice ------------------------------------------------------------------------------


async def test_the_limiter_keeps_to_the_servers_rate_limit_headers() -> None:
    # 600 requests a minute (10 a second), and only 3 left when the run starts: the configured rpm (6000)
    # would let every call go at once, the server's headers say otherwise
    with FakeOpenAI(FakeConfig(rate_limit=600, rate_tokens=3)) as server:
        role = build_role("text", RoleSettings(base_url=server.url, api_key_env=KEY_ENV, timeout=10))
        limiter = ServiceLimiter("text", 64, 6000, window_s=60)
        gate, _ = gate_for(limiter)
        await gate.call("i0/c00/combine", "text", asking(role, 0))  # the first answer brings the advice
        await asyncio.gather(*(gate.call(f"i0/c{i:02d}/combine", "text", asking(role, i)) for i in range(1, 16)))
        await role.aclose()
    stats = server.stats["text"]
    assert stats.faults["ratelimit"] == 0 and stats.answered == 16, "no request found the bucket empty"
    assert limiter.held_by_server > 0
    # counted at the server: by each arrival, no more requests than the bucket held and refilled
    starts = sorted(stats.starts)
    assert all(k + 1 <= 3 + (t - starts[0]) * 10 + 1e-6 for k, t in enumerate(starts))


async def test_a_429_with_headers_holds_the_next_start_until_the_budget_refills() -> None:
    with FakeOpenAI(FakeConfig(rate_limit=120, rate_tokens=0.2)) as server:  # empty: 2 a second refill it
        role = build_role("text", RoleSettings(base_url=server.url, api_key_env=KEY_ENV, timeout=10))
        limiter = ServiceLimiter("text", 8, None)
        gate, _ = gate_for(limiter, max_attempts=3)
        await asyncio.gather(*(gate.call(f"i0/c{i}/combine", "text", asking(role, i)) for i in range(3)))
        await role.aclose()
    stats = server.stats["text"]
    assert stats.answered == 3
    # the three first tries find the bucket empty; after their 429s the limiter waits for the refill,
    # so the retries do not hit it again (they are spread by the refill, not by luck)
    assert stats.faults["ratelimit"] == 3 and limiter.held_by_server >= 2


async def test_advice_never_lifts_the_configured_rate() -> None:
    limiter = ServiceLimiter("text", 8, 120, window_s=0.5)  # one start per 0.5 s
    now = time.monotonic()
    limiter.advise(RateAdvice(limit=100_000, remaining=99_999, reset_s=0.001, observed_at=now), now)

    async def one() -> None:
        async with limiter.slot():
            pass

    await asyncio.gather(*(one() for _ in range(3)))
    gaps = [b - a for a, b in zip(limiter.starts, limiter.starts[1:], strict=False)]
    assert len(gaps) == 2 and min(gaps) >= 0.49


async def test_advice_of_an_hours_long_reset_holds_no_longer_than_a_retry_after_may() -> None:
    limiter = ServiceLimiter("text", 8, None)
    given = time.monotonic() - RETRY_AFTER_CEILING_S - 1
    limiter.advise(RateAdvice(limit=None, remaining=0, reset_s=3600.0, observed_at=given), given)  # none left for an hour

    async def one() -> None:
        async with limiter.slot():
            pass

    await asyncio.wait_for(one(), 5)
    assert limiter.held_by_server == 0 and len(limiter.starts) == 1


# --- queue time and the server's slots -------------------------------------------------------------


async def test_time_at_our_own_limiter_is_not_the_attempts_timeout() -> None:
    limiter = ServiceLimiter("text", 1, None)
    gate, steps = gate_for(limiter, max_attempts=1, timeout=0.5)

    async def slow() -> StepAnswer:
        await asyncio.sleep(0.2)
        return StepAnswer({"text": "done"})

    await asyncio.gather(*(gate.call(f"i0/c{i}/combine", "text", slow) for i in range(4)))  # 0.8 s in all
    assert len(steps) == 4 and all(s.attempts == 1 for s in steps)
    waits = [s.waited for s in steps]  # in the order they were answered, which is the order they queued
    assert waits[0] < waits[1] < waits[2] < waits[3]
    assert all(s.elapsed < 0.5 for s in steps), "elapsed is the call's own time, the queue left out"


def one_slot_run(server: FakeOpenAI, tmp_path: Path) -> Any:
    """Text on a one-slot local server with a timeout shorter than a queue of its calls takes."""
    return resolve(None, {
        "prompt": "a red lighthouse by the sea", "n": 3, "m": 1, "iterations": 1, "provider": "sim",
        "runs_dir": str(tmp_path / "runs"), "text.provider": "openai", "text.base_url": server.url,
        "text.api_key_env": KEY_ENV, "text.timeout": 0.5, "limits.text.concurrency": 16,
        "retries.max_attempts": 2, "retries.backoff_initial": 0.01, "retries.backoff_max": 0.02,
    }, environ={})


@pytest.mark.parametrize("routes", [("slots", "props"), ("props",)])
async def test_a_one_slot_server_with_a_short_timeout_no_longer_fails(tmp_path: Path, routes: tuple[str, ...]) -> None:
    config = FakeConfig(slots=1, slot_routes=routes, latency={"text": 0.2, "image": 0.0, "vision": 0.0})
    warnings: list[str] = []
    with FakeOpenAI(config) as server:
        result = await start_run(one_slot_run(server, tmp_path),
                                 listeners=[lambda e: warnings.append(e.message) if e.type == "warning" else None])
    assert result.status == "done", result.error
    assert server.stats["text"].max_in_flight == 1 and server.stats["text"].faults == {}
    assert any("serves 1 request at once" in w for w in warnings)
    steps = [json.loads(line) for line in (result.store.path / "events.jsonl").read_text().splitlines()]
    text = [s for s in steps if s["type"] == "step" and s["service"] == "text"]
    assert len(text) == 6 + 3 and all(s["attempts"] == 1 for s in text)  # 3 lanes: 2 expansions, 1 combine
    assert max(s["waited"] for s in text) > max(s["elapsed"] for s in text), "the queue is recorded apart"


async def test_slots_are_asked_only_of_local_servers_and_any_failure_is_silence() -> None:
    assert is_local("http://127.0.0.1:8080/v1") and is_local("http://localhost:1234/v1")
    assert is_local("http://192.168.1.20:8000/v1") and is_local("http://[::1]:8000/v1")
    assert not is_local("https://api.openai.com/v1") and not is_local("http://gpu-box.example.com/v1")
    assert root_of("http://127.0.0.1:8080/v1/") == "http://127.0.0.1:8080"
    with FakeOpenAI(FakeConfig(slots=4)) as server, FakeOpenAI(FakeConfig(slots=4, slot_routes=())) as silent:
        text, vision = (build_role(role, RoleSettings(base_url=server.url, api_key_env=KEY_ENV)) for role in ("text", "vision"))
        assert await asyncio.gather(text.parallelism(), vision.parallelism()) == [4, 4]
        assert server.probes == ["/slots"], "roles of one endpoint ask it once"
        quiet = build_role("text", RoleSettings(base_url=silent.url, api_key_env=KEY_ENV))
        assert await quiet.parallelism() is None  # 501 and 404: it does not say
        assert silent.probes == ["/slots", "/props"]
        for role in (text, vision, quiet):
            await role.aclose()
    assert await ask_slots(object(), "https://api.openai.com/v1") is None  # never asked
