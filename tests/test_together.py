"""Side-by-side calls are all waited for, and the failure reported does not depend on timing."""

from __future__ import annotations

import asyncio

import pytest
from simhelp import Timed, read_events, sim_settings

from beamsearch.app import resume_run, start_run
from beamsearch.errors import BudgetExhausted, FatalCallError, StepFailed
from beamsearch.providers.sim import Simulator
from beamsearch.together import all_settled


async def test_every_awaitable_finishes_before_the_failure_is_raised() -> None:
    finished: list[str] = []

    async def fail_soon() -> None:
        raise StepFailed("soon")

    async def slow() -> str:
        await asyncio.sleep(0.05)
        finished.append("slow")
        return "slow"

    with pytest.raises(StepFailed, match="soon"):
        await all_settled(fail_soon(), slow())
    assert finished == ["slow"]  # with asyncio.gather it would still be running here
    assert await all_settled(slow(), asyncio.sleep(0, result=1)) == ["slow", 1]


async def test_the_failure_that_counts_is_chosen_by_kind_then_order_not_by_time() -> None:
    async def fail(error: BaseException, after: float) -> None:
        await asyncio.sleep(after)
        raise error

    with pytest.raises(StepFailed, match="first in order"):  # the other one failed sooner
        await all_settled(fail(StepFailed("first in order"), 0.03), fail(StepFailed("sooner"), 0.0))
    with pytest.raises(BudgetExhausted):  # a run-wide stop outranks a call failure
        await all_settled(fail(StepFailed("call"), 0.0), fail(BudgetExhausted("budget"), 0.02))
    with pytest.raises(ValueError):  # a bug outranks a call failure
        await all_settled(fail(StepFailed("call"), 0.0), fail(ValueError("bug"), 0.02))


class TwoJudgesFail(Timed):
    """Lane c00's alignment judge fails late, its aesthetic judge fails at once (other errors)."""

    async def judge(self, request):
        if request.key == "i0/c00/judge_alignment":
            self._mark("start", request.key)
            await asyncio.sleep(0.05)
            raise FatalCallError("A: 400 bad image")
        if request.key == "i0/c00/judge_aesthetic":
            self._mark("start", request.key)
            raise FatalCallError("B: 404 no such model")
        return await super().judge(request)


class SlowSiblingOfAFailure(Timed):
    """Lane c00's alignment judge fails at once while its aesthetic judge is still working."""

    async def judge(self, request):
        if request.key == "i0/c00/judge_alignment":
            self._mark("start", request.key)
            raise FatalCallError("bad request")
        if request.key == "i0/c00/judge_aesthetic":
            await asyncio.sleep(0.1)
        return await super().judge(request)


async def test_a_sibling_of_a_failed_judge_is_recorded_before_the_run_ends_and_not_asked_again(tmp_path) -> None:
    settings = sim_settings(tmp_path, n=3, m=1, iterations=1, seed=7)
    run_dir = (await start_run(settings, providers=SlowSiblingOfAFailure(
        Simulator(settings.seed, settings.sim)).providers())).store.path
    events = read_events(run_dir)
    finished = next(i for i, e in enumerate(events) if e["type"] == "run_finished")
    assert any(e.get("key") == "i0/c00/judge_aesthetic" for e in events[:finished])
    timed = SlowSiblingOfAFailure(Simulator(settings.seed, settings.sim))
    result = await resume_run(run_dir, flags={"iterations": 2}, providers=timed.providers(), environ={})
    assert result.status == "done"
    assert not [key for _, what, key in timed.log if what == "start" and key.startswith("i0/")]


async def test_a_lane_whose_two_judges_fail_fails_the_same_way_on_replay(tmp_path) -> None:
    settings = sim_settings(tmp_path, n=3, m=1, iterations=1, seed=7)
    first = await start_run(settings, providers=TwoJudgesFail(Simulator(settings.seed, settings.sim)).providers())
    failed = [e for e in read_events(first.store.path) if e["type"] == "lane_failed"]
    assert [e["error"] for e in failed] == ["A: 400 bad image"]  # argument order, though B failed sooner
    await resume_run(first.store.path, flags={"iterations": 2},
                     providers=TwoJudgesFail(Simulator(settings.seed, settings.sim)).providers(), environ={})
    again = [e for e in read_events(first.store.path) if e["type"] == "lane_failed"]
    assert again == failed  # the replayed lane matched the log: nothing logged again
