"""The run's lifecycle: no task outlives the run, a paid answer is never left unrecorded, a cancellation
from outside is logged as a resumable stop and then propagates, and a 429 really holds its service."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from simhelp import Timed, read_events, sim_settings
from test_gate import make_gate

from beamsearch.app import start_run
from beamsearch.errors import FatalCallError, RetryableError
from beamsearch.gate import StepAnswer
from beamsearch.providers.base import ImageRequest, ImageResult
from beamsearch.providers.sim import Simulator


class RefusingImages(Timed):
    """The simulator with a slow checklist and an image service that refuses every prompt for good."""

    async def generate(self, request: ImageRequest) -> ImageResult:
        self._mark("start", request.key)
        raise FatalCallError("the image service is down for good")


async def test_the_checklist_never_outlives_the_run_and_its_answer_is_recorded(tmp_path) -> None:
    settings = sim_settings(tmp_path, n=3, m=1, iterations=2, alignment="checklist")
    slow = RefusingImages(Simulator(settings.seed, settings.sim),
                          delay=lambda key: 0.5 if key == "run/checklist" else 0.0)
    result = await start_run(settings, providers=slow.providers())
    assert result.status == "failed"  # every lane's image failed, long before the checklist answered
    pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert pending == []
    events = read_events(result.store.path)
    kinds = [(e["type"], e.get("key")) for e in events]
    assert ("step", "run/checklist") in kinds
    assert kinds.index(("step", "run/checklist")) < kinds.index(("run_finished", None))
    assert events[-1]["type"] == "run_finished" and events[-1]["status"] == "failed"


async def test_a_timeout_around_start_run_raises_after_run_finished_is_logged(tmp_path) -> None:
    settings = sim_settings(tmp_path, n=3, m=1, iterations=3, **{"sim.latency.image.mean": 0.2})
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await start_run(settings)
    run_dir = next((tmp_path / "runs").iterdir())
    events = read_events(run_dir)
    assert events[-1]["type"] == "run_finished" and events[-1]["status"] == "stopped"
    assert (run_dir / "summary.json").is_file()
    pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert pending == []


async def test_cancelling_the_task_that_runs_the_search_propagates_after_the_stop_is_logged(tmp_path) -> None:
    settings = sim_settings(tmp_path, n=3, m=1, iterations=3, **{"sim.latency.image.mean": 0.2})
    task = asyncio.ensure_future(start_run(settings))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    events = read_events(next((tmp_path / "runs").iterdir()))
    assert [e["type"] for e in events].count("run_finished") == 1 and events[-1]["status"] == "stopped"


async def test_a_429_holds_every_call_of_its_service_until_the_advised_time() -> None:
    """One call gets a 429 advising a pause; a second call of the same service asked during the pause
    does not reach the provider until it is over (no mock of the pause itself)."""
    gate, _, _ = make_gate(max_attempts=3)
    started: dict[str, list[float]] = {"a": [], "b": []}
    rate_limited = asyncio.Event()

    async def first() -> StepAnswer:
        started["a"].append(time.monotonic())
        if len(started["a"]) == 1:
            rate_limited.set()
            raise RetryableError("rate limited (429)", retry_after=0.3, pause_service=True)
        return StepAnswer({"answer": "a"})

    async def second() -> StepAnswer:
        started["b"].append(time.monotonic())
        return StepAnswer({"answer": "b"})

    async def later() -> Any:
        await rate_limited.wait()
        await asyncio.sleep(0.01)  # the 429 has been seen: the service is paused
        asked = time.monotonic()
        return asked, await gate.call("b", "text", second)

    task_a = asyncio.ensure_future(gate.call("a", "text", first))
    (asked, answer), _ = await asyncio.gather(later(), task_a)
    assert answer == {"answer": "b"}
    paused_until = started["a"][0] + 0.3
    assert started["b"][0] >= paused_until - 0.02, "a call of a paused service went out before the pause ended"
    assert started["b"][0] - asked >= 0.2
