"""The gate on its own: attempt numbering, retries, the retry bound, the shared pause, replay."""

from __future__ import annotations

import random
from typing import Any

import pytest

from beamsearch.costs import Budget
from beamsearch.errors import FatalCallError, RetryableError, StepFailed
from beamsearch.events import Step, StepFailure
from beamsearch.gate import Gate, StepAnswer
from beamsearch.limits import RetryPolicy, ServiceLimiter


def recorded_step(key: str, **fields: Any) -> Step:
    return Step(key=key, service="text", **fields)


def plain(event: Any) -> dict[str, Any]:
    """An event as the log holds it, without its time stamp."""
    return {k: v for k, v in event.data().items() if k != "ts"}


def make_gate(max_attempts: int = 3, recorded: dict[str, Any] | None = None, failed: dict[str, Any] | None = None,
              **options: Any) -> tuple[Gate, list[dict[str, Any]], list[dict[str, Any]]]:
    events: list[dict[str, Any]] = []
    notices: list[dict[str, Any]] = []
    gate = Gate(limiters={"text": ServiceLimiter("text", 4, None)},
                policy=RetryPolicy(max_attempts, initial=0.001, maximum=0.002, rng=random.Random(0)),
                budget=Budget(None), prices={}, models={"text": "m"},
                recorded={k: recorded_step(k, **v) for k, v in (recorded or {}).items()},
                failed={k: StepFailure(**v) for k, v in (failed or {}).items()},
                record=lambda event: events.append(plain(event)), notify=lambda event: notices.append(plain(event)),
                **options)
    return gate, events, notices


def flaky(failures: int, error: Exception | None = None) -> tuple[Any, list[int]]:
    """An attempt that fails `failures` times, then answers; it counts its calls."""
    calls: list[int] = []

    async def attempt() -> StepAnswer:
        calls.append(1)
        if len(calls) <= failures:
            raise error or RetryableError(f"failure {len(calls)}")
        return StepAnswer({"answer": len(calls)})

    return attempt, calls


async def test_a_first_success_is_one_attempt_and_no_retry() -> None:
    gate, events, notices = make_gate()
    attempt, calls = flaky(0)
    assert await gate.call("i0/c0/combine", "text", attempt) == {"answer": 1}
    assert len(calls) == 1 and gate.retries == 0 and notices == []
    assert events[0]["attempts"] == 1 and events[0]["key"] == "i0/c0/combine"


async def test_retries_are_numbered_across_the_first_attempt_and_the_rest() -> None:
    gate, events, notices = make_gate(max_attempts=4)
    attempt, calls = flaky(2)
    assert await gate.call("k", "text", attempt) == {"answer": 3}
    assert len(calls) == 3 and gate.retries == 2 and gate.attempts["text"] == 3
    assert [n["attempt"] for n in notices] == [1, 2] and not any(n["final"] for n in notices)
    assert events[-1]["attempts"] == 3


@pytest.mark.parametrize("max_attempts", [1, 2, 3])
async def test_the_bound_on_attempts_is_exact(max_attempts: int) -> None:
    gate, events, notices = make_gate(max_attempts=max_attempts)
    attempt, calls = flaky(99)
    with pytest.raises(StepFailed, match=f"after {max_attempts} attempts: failure {max_attempts}"):
        await gate.call("k", "text", attempt)
    assert len(calls) == max_attempts and gate.retries == max_attempts - 1
    assert [(e["type"], e["key"], e["kind"]) for e in events] == [("step_failed", "k", "StepFailed")]
    assert [n["attempt"] for n in notices] == list(range(1, max_attempts + 1)) and notices[-1]["final"]


async def test_a_fatal_error_is_not_retried_and_is_recorded() -> None:
    gate, events, _ = make_gate()
    attempt, calls = flaky(1, FatalCallError("bad request"))
    with pytest.raises(FatalCallError):
        await gate.call("k", "text", attempt, inputs="abc")
    assert len(calls) == 1
    assert events == [{"type": "step_failed", "key": "k", "service": "text", "error": "bad request",
                       "kind": "FatalCallError", "inputs": "abc"}]


async def test_a_settled_failure_fails_again_on_replay_without_a_call() -> None:
    failure = {"type": "step_failed", "key": "k", "service": "text", "error": "bad request", "inputs": "abc"}
    gate, events, _ = make_gate(failed={"k": failure})
    attempt, calls = flaky(0)
    with pytest.raises(StepFailed, match="bad request"):
        await gate.call("k", "text", attempt, inputs="abc")
    assert calls == [] and events == [] and gate.replayed["text"] == 1
    assert await gate.call("k", "text", attempt, inputs="other") == {"answer": 1}  # asked something else


async def test_an_answer_to_other_inputs_is_not_replayed() -> None:
    gate, events, _ = make_gate(recorded={"k": {"result": {"answer": "old"}, "inputs": "abc"}})
    attempt, calls = flaky(0)
    assert await gate.call("k", "text", attempt, inputs="abc") == {"answer": "old"} and calls == []
    assert await gate.call("k", "text", attempt, inputs="new") == {"answer": 1} and len(calls) == 1
    assert events[-1]["inputs"] == "new" and gate.recorded["k"].inputs == "new"


async def test_an_attempt_that_never_ends_is_cut_at_the_timeout_and_retried() -> None:
    import asyncio

    gate, events, notices = make_gate(max_attempts=2, timeouts={"text": 0.05})
    calls: list[int] = []

    async def trickle() -> StepAnswer:
        calls.append(1)
        if len(calls) == 1:
            await asyncio.sleep(3600)  # a server that never finishes its answer
        return StepAnswer({"answer": len(calls)})

    assert await gate.call("k", "text", trickle) == {"answer": 2}
    assert notices[0]["error"] == "no whole answer within 0.05 s" and events[-1]["attempts"] == 2


async def test_a_429_pauses_the_whole_service() -> None:
    gate, _, _ = make_gate()
    paused: list[float] = []
    gate.limiters["text"].pause = paused.append  # type: ignore[method-assign]
    attempt, _ = flaky(2, RetryableError("rate limited", retry_after=0.001, pause_service=True))
    await gate.call("k", "text", attempt)
    assert paused == [0.001, 0.001]  # the server's advice, once per failed attempt


async def test_a_recorded_step_is_answered_from_the_log() -> None:
    gate, events, _ = make_gate(recorded={"k": {"result": {"answer": "old"}}})
    attempt, calls = flaky(0)
    assert await gate.call("k", "text", attempt) == {"answer": "old"}
    assert calls == [] and events == [] and gate.replayed["text"] == 1
    gate.recorded["k"] = recorded_step("k", result={"answer": "stale"})
    assert await gate.call("k", "text", attempt, still_valid=lambda result: False) == {"answer": 1}
    assert len(calls) == 1
