"""The live view's spend on a resumed run: replayed steps send no events, so the tracker starts from the
spend the run_started event reports, and counts new steps on top of it."""

from __future__ import annotations

import pytest

from beamsearch.display import Tracker, header, plain_line
from beamsearch.progress import from_data


def test_a_resumed_run_starts_from_what_was_already_spent() -> None:
    tracker = Tracker(m=2, iterations=3, max_cost=1.0)
    for event in [
        {"type": "run_started", "resumed": True, "providers": {}, "spent_usd": 0.4125},
        {"type": "iteration_started", "iteration": 1, "dimension": "what", "lanes": 2},
        {"type": "step", "key": "i1/c00/refine", "service": "text", "result": {}, "cost": 0.01, "attempts": 1},
        {"type": "step", "key": "i1/c00/image", "service": "image", "result": {}, "cost": 0.04, "attempts": 1},
    ]:
        tracker.update(from_data(event))
    assert tracker.spent == pytest.approx(0.4625)
    assert "$0.4625 of $1.00" in header(tracker).plain
    assert plain_line(from_data({"type": "run_started", "resumed": True, "spent_usd": 0.4125})) == \
        "run resumed ($0.4125 spent before)"


def test_a_new_run_or_an_older_event_starts_from_zero() -> None:
    tracker = Tracker()
    tracker.update(from_data({"type": "run_started", "resumed": False, "providers": {}, "spent_usd": 0.0}))
    tracker.update(from_data({"type": "step", "key": "i0/c00/expand", "service": "text", "result": {}, "cost": 0.002}))
    assert tracker.spent == pytest.approx(0.002)
    older = Tracker()
    older.update(from_data({"type": "run_started", "resumed": True, "providers": {}}))  # a log written before spent_usd
    assert older.spent == 0.0
    assert plain_line(from_data({"type": "run_started", "resumed": False, "spent_usd": 0.0})) == "run started"
