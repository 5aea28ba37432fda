"""The live view says what is happening (issue 15, item 3): each lane's WHAT and HOW, per-lane retries,
the last survivors kept on screen, "iteration 2 of 4", a progress bar with time left for wide beams,
and "resumed" on resume."""

from __future__ import annotations

import asyncio
import io

from rich.console import Console
from simhelp import sim_settings

from beamsearch.app import start_run
from beamsearch.display import LiveDisplay, header
from beamsearch.events import from_data
from beamsearch.tracker import Tracker


def text_of(renderable, width: int = 160) -> str:
    console = Console(file=io.StringIO(), width=width, force_terminal=False, color_system=None)
    console.print(renderable)
    return console.file.getvalue()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def feed(target, *events: dict) -> None:
    """Events as data to a tracker or a live view."""
    update = target.update if isinstance(target, Tracker) else target
    for data in events:
        update(from_data(data))


def live(width: int = 160, **kwargs) -> LiveDisplay:
    return LiveDisplay(Console(file=io.StringIO(), width=width), kwargs.pop("m", 2), "sim", **kwargs)


def test_each_lane_shows_its_short_what_and_how(tmp_path) -> None:
    events: list = []
    result = asyncio.run(start_run(sim_settings(tmp_path, n=3, m=1, iterations=2), [events.append]))
    view = live(width=200, iterations=2)
    for event in events:
        view(event)
    shown = text_of(view.render(), 200)
    last = [c for c in result.summary["candidates"] if c["iteration"] == 1]
    assert last and "WHAT · HOW" in shown
    for candidate in last:
        row = next(r for r in shown.splitlines() if r.startswith(candidate["id"]))
        assert candidate["what"][:20] in row and candidate["how"][:15] in row, row


def test_a_retry_is_shown_on_its_own_lane_until_it_moves_on() -> None:
    view = live(iterations=3)
    feed(view, {"type": "iteration_started", "iteration": 1, "dimension": "what", "lanes": 3},
         *({"type": "stage", "id": f"i1c0{j}", "parent": "i0c00" if j < 2 else "i0c01", "iteration": 1,
            "stage": "critique"} for j in range(3)),
         {"type": "attempt_failed", "key": "i1/p-i0c00/critique", "service": "text", "attempt": 1, "error": "429 slow down"},
         {"type": "stage", "id": "i1c02", "parent": "i0c01", "iteration": 1, "stage": "image"},
         {"type": "attempt_failed", "key": "i1/c02/image.r1", "service": "image", "attempt": 2, "error": "timed out"})
    rows = {line.split()[0]: line for line in text_of(view.render()).splitlines() if line.startswith("i1c")}
    # the critique of i0c00 is what its two children wait on; the image retry belongs to i1c02 alone
    assert "critique attempt 1 failed, retrying: 429 slow down" in rows["i1c00"] and "429" in rows["i1c01"]
    assert "image attempt 2 failed, retrying: timed out" in rows["i1c02"] and "429" not in rows["i1c02"]
    assert [lane.retries for lane in view.tracker.lanes.values()] == [1, 1, 1]
    feed(view, {"type": "stage", "id": "i1c00", "parent": "i0c00", "iteration": 1, "stage": "refine"})
    rows = {line.split()[0]: line for line in text_of(view.render()).splitlines() if line.startswith("i1c")}
    assert "retrying" not in rows["i1c00"] and "refine" in rows["i1c00"]
    assert "retrying" in rows["i1c01"]  # still waiting on the same critique in this view's eyes
    assert "retries 2" in header(view.tracker).plain  # two failed attempts, one of them waited on by two lanes


def test_the_last_survivors_stay_on_screen_into_the_next_iteration() -> None:
    view = live(iterations=4)
    feed(view, {"type": "iteration_started", "iteration": 0, "dimension": "expand", "lanes": 2},
         {"type": "stage", "id": "i0c00", "iteration": 0, "stage": "done", "total": 70.5, "alignment": 80, "aesthetic": 5},
         {"type": "stage", "id": "i0c01", "iteration": 0, "stage": "done", "total": 61.0, "alignment": 70, "aesthetic": 4},
         {"type": "ranked", "iteration": 0, "survivors": ["i0c00"], "best": "i0c00", "best_total": 70.5},
         {"type": "iteration_started", "iteration": 1, "dimension": "what", "lanes": 2},
         {"type": "stage", "id": "i1c00", "parent": "i0c00", "iteration": 1, "stage": "critique"})
    shown = text_of(view.render())
    assert "survivors of iteration 1 (i0): i0c00 70.5" in shown
    assert "iteration 2 of 4 (i1)" in shown
    feed(view, {"type": "stage", "id": "i1c00", "parent": "i0c00", "iteration": 1, "stage": "done", "total": 60.0,
                "alignment": 60, "aesthetic": 6},
         {"type": "ranked", "iteration": 1, "survivors": ["i0c00", "i1c00"], "best": "i0c00", "best_total": 70.5})
    assert "survivors of iteration 2 (i1): i0c00 70.5 kept, i1c00 60.0" in text_of(view.render())


def test_a_wide_beam_has_a_progress_bar_and_the_time_left_by_the_estimate() -> None:
    clock = Clock()
    tracker = Tracker(m=3, iterations=3, estimate=[10.0, 20.0, 20.0], clock=clock)
    view = live(m=3, iterations=3)
    view.tracker = tracker
    lanes = 20
    feed(tracker, {"type": "run_started"}, {"type": "iteration_started", "iteration": 0, "dimension": "expand", "lanes": lanes})
    for j in range(lanes):
        feed(tracker, {"type": "stage", "id": f"i0c{j:02d}", "iteration": 0, "stage": "image"})
    clock.now += 4
    assert tracker.time_left() == 6 + 40  # before any iteration is measured, the estimate as it stands
    for j in range(5):
        feed(tracker, {"type": "stage", "id": f"i0c{j:02d}", "iteration": 0, "stage": "done", "total": 50 + j,
                       "alignment": 50, "aesthetic": 5})
    shown = text_of(view.render())
    assert "lanes 5/20" in shown and "8% of the run" in shown and "about 46.0s left" in shown
    assert "i0c00 " not in shown  # counts, not a row per lane
    # iteration 0 took 15 s against an estimate of 10: the rest is scaled by that pace
    clock.now += 11
    feed(tracker, {"type": "step", "key": "i0/c00/image", "service": "image", "result": {}, "cost": 0.0},
         {"type": "ranked", "iteration": 0, "survivors": ["i0c04"], "best": "i0c04", "best_total": 54},
         {"type": "iteration_started", "iteration": 1, "dimension": "what", "lanes": lanes})
    assert tracker.pace() == 1.5
    clock.now += 3
    assert tracker.time_left() == 1.5 * 20 - 3 + 1.5 * 20
    for j in range(lanes):
        feed(tracker, {"type": "stage", "id": f"i1c{j:02d}", "parent": "i0c04", "iteration": 1, "stage": "refine"})
    feed(tracker, {"type": "attempt_failed", "key": "i1/c07/refine_what", "service": "text", "attempt": 1, "error": "x"})
    shown = text_of(view.render())
    assert "lanes 0/20" in shown and "33% of the run" in shown and "about 57.0s left" in shown
    assert "retrying i1c07 refine what attempt 1 failed, retrying: x" in shown


def test_a_resumed_session_says_so() -> None:
    tracker = Tracker(iterations=4)
    tracker.update(from_data({"type": "run_started", "resumed": True, "spent_usd": 0.5}))
    assert header(tracker).plain.startswith("resumed  iteration 1 of 4")
    fresh = Tracker(iterations=4)
    fresh.update(from_data({"type": "run_started", "resumed": False}))
    assert "resumed" not in header(fresh).plain
