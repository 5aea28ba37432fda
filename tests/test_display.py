"""The live view, plain lines and JSON lines, fed with the events of real simulator runs."""

from __future__ import annotations

import asyncio
import io
import json

import pytest
from rich.console import Console
from simhelp import SEED, sim_settings

from beamsearch.app import start_run
from beamsearch.display import (
    JsonDisplay,
    LiveDisplay,
    PlainDisplay,
    Tracker,
    header,
    plain_line,
    result_table,
)
from beamsearch.progress import from_data


def collect(tmp_path, **flags):
    events: list = []
    result = asyncio.run(start_run(sim_settings(tmp_path, **flags), [events.append]))
    return events, result


def text_of(renderable, width: int = 140) -> str:
    console = Console(file=io.StringIO(), width=width, force_terminal=False, color_system=None)
    console.print(renderable)
    return console.file.getvalue()


def test_tracker_follows_the_run(tmp_path) -> None:
    events, result = collect(tmp_path, n=4, m=2, iterations=3, rejudge=False,  # top M as ranked, not re-judged
                             **{"sim.failure_rate": 0.15, "retries.backoff_initial": 0})
    tracker = Tracker(m=2, iterations=3)
    for event in events:
        tracker.update(event)
    summary = result.summary
    assert tracker.best == (summary["best"]["id"], summary["best"]["total"])
    assert tracker.iteration == 2 and tracker.dimension == "how"
    assert tracker.retries == sum(1 for e in events if e.type == "attempt_failed") > 0
    assert tracker.spent == pytest.approx(sum(e.cost for e in events if e.type == "step"), abs=1e-12)
    assert tracker.counts()["done"] + tracker.counts()["failed"] + tracker.counts()["skipped"] == 4
    assert [cid for cid, _ in tracker.top()] == summary["iterations"][-1]["survivors"]


def test_live_view_has_a_header_and_a_row_per_lane_for_small_n(tmp_path) -> None:
    events, result = collect(tmp_path, n=4, m=2, iterations=2, max_cost_usd=5)
    console = Console(file=io.StringIO(), width=140, force_terminal=False, color_system=None)
    live = LiveDisplay(console, 2, "provider: simulator", iterations=2, max_cost=5)
    for event in events:
        live(event)
    shown = text_of(live.render())
    best = result.summary["best"]
    assert "iteration 2 of 2 (i1)" in shown and "refining WHAT" in shown
    assert f"best so far {best['total']:.1f} ({best['id']})" in shown and "of $5.00" in shown and "retries 0" in shown
    for j in range(4):
        assert f"i1c{j:02d}" in shown
    assert shown.count(" done ") >= 4 and "provider: simulator" in shown


def test_live_view_shows_counts_and_the_top_m_for_large_n(tmp_path) -> None:
    events, result = collect(tmp_path, n=20, m=3, iterations=1, **SEED)
    live = LiveDisplay(Console(file=io.StringIO()), 3, "sim")
    half = [e for e in events if e.type != "run_finished"]
    first_judging = next(i for i, e in enumerate(half) if e.type == "stage" and e.stage == "judge")
    for event in half[: first_judging + 1]:
        live(event)
    midway = text_of(live.render())
    assert "judge: 1" in midway and "i0c00 " not in midway  # counts, not a row per lane
    for event in half[first_judging + 1:]:
        live(event)
    shown = text_of(live.render())
    pool = result.summary["iterations"][0]["pool"][:3]
    assert "done: 20" in shown
    assert "top 3: " + ", ".join(f"{cid} {total:.1f}" for cid, total in pool) in shown


def test_header_mentions_iteration_dimension_spend_best_and_retries() -> None:
    tracker = Tracker(m=2, iterations=4)
    for data in ({"type": "iteration_started", "iteration": 2, "dimension": "how", "lanes": 3},
                 {"type": "step", "key": "i2/c01/combine", "service": "text", "result": {}, "cost": 0.25},
                 {"type": "attempt_failed", "key": "k", "service": "text", "attempt": 1, "error": "x"},
                 {"type": "stage", "id": "i2c01", "parent": "i1c00", "iteration": 2, "stage": "done", "total": 71.5,
                  "alignment": 80, "aesthetic": 5.0}):
        tracker.update(from_data(data))
    line = header(tracker).plain
    assert "iteration 3 of 4 (i2)" in line and "refining HOW" in line and "$0.2500" in line
    assert "best so far 71.5 (i2c01)" in line and "retries 1" in line


def test_plain_display_writes_one_line_per_finished_step(tmp_path) -> None:
    events, _ = collect(tmp_path, n=3, m=1, iterations=2)
    stream = io.StringIO()
    plain = PlainDisplay(stream)
    for event in events:
        plain(event)
    lines = stream.getvalue().splitlines()
    steps = [e for e in events if e.type == "step"]
    assert len([line for line in lines if line.startswith("step ")]) == len(steps)
    assert lines[0] == "run started" and lines[-1].startswith("run done: ")
    progress = from_data({"type": "stage", "id": "i0c00", "iteration": 0, "stage": "image"})
    assert plain_line(progress) is None  # progress, not a finished step


def test_json_display_writes_the_event_as_one_stamped_line() -> None:
    stream = io.StringIO()
    event = from_data({"type": "stage", "id": "i0c00", "iteration": 0, "stage": "image", "note": "ünïcode"})
    JsonDisplay(stream)(event)
    written = json.loads(stream.getvalue())
    assert written["ts"] == event.ts > 0 and written["note"] == "ünïcode" and written["stage"] == "image"
    assert stream.getvalue().count("\n") == 1 and "ünïcode" in stream.getvalue()


def test_result_table_shows_model_text_literally() -> None:
    summary = {"best": {"id": "i0c00", "total": 50.0, "alignment": 60, "aesthetic": 4.0, "what": "[bold]a cat[/bold]",
                        "how": "[red]oil[/red]", "prompt": "p", "image": "images/i0c00.png"},
               "lineage": ["i0c00"], "usage": {}, "status": "done", "reason": "ok"}
    shown = text_of(result_table(summary, "/runs/x"))
    assert "[bold]a cat[/bold]" in shown and "[red]oil[/red]" in shown and "report.html" in shown
