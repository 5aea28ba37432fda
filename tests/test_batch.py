"""A batch of ideas offline: failure isolation, the shared budget, Ctrl-C, resuming, and its derived files."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest
from batchhelp import FIVE, batch_events, batch_of, ideas_file, offline, simulators, steps_per_key

from beamsearch.batch import IdeaBudget, exit_code_of, run_batch
from beamsearch.batch_index import rebuild
from beamsearch.batch_open import open_batch_for_resume, open_new_batch
from beamsearch.costs import Budget


async def test_an_idea_whose_every_image_is_refused_fails_alone_and_the_other_four_finish(tmp_path: Path) -> None:
    made: list = []
    result = await batch_of(tmp_path, FIVE, concurrency=2, providers_for=simulators(refuse="black cat", made=made))
    assert result.exit_code == 1 and result.status == "failed"
    rows = {row["idea"]: row for row in result.summary["rows"]}
    assert [rows[i]["status"] for i in range(1, 6)] == ["done", "done", "done", "failed", "done"]
    assert "refused" in rows[4]["reason"] and rows[4]["best_total"] is None
    assert all(rows[i]["best_total"] > 0 for i in (1, 2, 3, 5))
    refusing = next(image for prompt, _, image in made if "black cat" in prompt)
    assert refusing.refused >= 3  # every lane's image was refused, rephrases included
    finished = [e for e in batch_events(result.path) if e["type"] == "idea_finished"]
    assert sorted((e["idea"], e["status"]) for e in finished) == [(1, "done"), (2, "done"), (3, "done"),
                                                                 (4, "failed"), (5, "done")]
    assert result.summary["counts"]["done"] == 4 and result.summary["counts"]["failed"] == 1


async def test_a_bug_inside_one_idea_is_recorded_and_the_others_go_on(tmp_path: Path) -> None:
    result = await batch_of(tmp_path, FIVE[:3], concurrency=3, providers_for=simulators(broken="white boat"))
    rows = {row["idea"]: row for row in result.summary["rows"]}
    assert [rows[i]["status"] for i in (1, 2, 3)] == ["done", "failed", "done"]
    assert rows[2]["reason"].startswith("internal error: ZeroDivisionError")
    assert result.exit_code == 1


async def test_the_budget_caps_the_whole_batch_and_a_resume_counts_the_past_once(tmp_path: Path) -> None:
    whole = await batch_of(tmp_path / "whole", FIVE[:3], concurrency=1)
    full_cost = whole.summary["cost_usd"]
    cap = full_cost / 2
    first = await batch_of(tmp_path / "capped", FIVE[:3], concurrency=2, max_cost_usd=cap)
    assert first.exit_code == 3 and first.status == "stopped"
    assert 0 < first.summary["cost_usd"] <= cap  # the batch's spend, every idea together, stayed within the cap
    counts = first.summary["counts"]
    assert counts["done"] < 3

    second_cap = full_cost * 0.8
    resumed = await run_batch(open_batch_for_resume(first.path, flags={"max_cost_usd": second_cap}))
    assert resumed.exit_code == 3
    # the cap holds the past plus the new calls: were the past not counted, this session could spend second_cap anew
    assert first.summary["cost_usd"] < resumed.summary["cost_usd"] <= second_cap
    started = [e for e in batch_events(first.path) if e["type"] == "batch_started"]
    assert started[1]["spent_usd"] == pytest.approx(first.summary["cost_usd"], abs=1e-5)

    final = await run_batch(open_batch_for_resume(first.path, flags={"max_cost_usd": full_cost * 3}))
    assert final.exit_code == 0 and final.summary["counts"]["done"] == 3
    # each session's budget ended holding every idea's spend once: the past once, plus the new calls
    ends = [e["cost_usd"] for e in batch_events(first.path) if e["type"] == "batch_finished"]
    assert ends == pytest.approx([first.summary["cost_usd"], resumed.summary["cost_usd"], final.summary["cost_usd"]],
                                 abs=1e-5)
    assert final.summary["cost_usd"] == pytest.approx(full_cost, abs=1e-5)  # nothing was paid twice
    assert max(steps_per_key(first.path).values()) == 1


def test_an_idea_budget_spends_from_the_shared_one_and_counts_its_own_past() -> None:
    shared = Budget(1.0)
    shared.add("image", 0.5)  # what the batch knows the idea spent before
    idea = IdeaBudget(shared, {"image": 0.5})
    idea.reserve(0.2)
    assert shared.reserved == pytest.approx(0.2) and idea.reserved == pytest.approx(0.2)
    idea.settle(0.2, "image", 0.3)
    assert shared.spent == pytest.approx(0.8) and idea.spent == pytest.approx(0.8)
    other = IdeaBudget(shared, {})
    other.add("text", 0.1)
    assert shared.spent == pytest.approx(0.9) and other.spent == pytest.approx(0.1) and idea.spent == pytest.approx(0.8)
    with pytest.raises(Exception, match="budget"):
        other.reserve(0.2)  # the shared limit refuses it, whichever idea asks


def test_exit_codes() -> None:
    assert exit_code_of({"done": 3}, False) == ("done", 0)
    assert exit_code_of({"done": 2, "failed": 1}, False) == ("failed", 1)
    assert exit_code_of({"done": 1, "failed": 1, "not_started": 1}, True) == ("stopped", 3)


async def test_cancelling_a_batch_stops_every_idea_resumably_and_resume_finishes_without_asking_twice(tmp_path: Path) -> None:
    settings = offline(tmp_path, **{"sim.latency.text.mean": 0.02, "sim.latency.image.mean": 0.05,
                                    "sim.latency.vision.mean": 0.02, "iterations": 3})
    opened = open_new_batch(ideas_file(tmp_path, FIVE[:4]), settings, 2)
    task = asyncio.create_task(run_batch(opened))
    await asyncio.sleep(0.4)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    events = batch_events(opened.store.path)
    started = {e["idea"] for e in events if e["type"] == "idea_started"}
    stopped = {e["idea"] for e in events if e["type"] == "idea_finished" and e["reason"] == "interrupted by the user"}
    assert started and stopped == started - {e["idea"] for e in events if e["type"] == "idea_finished"
                                             and e["status"] == "done"}
    assert events[-1]["type"] == "batch_finished" and events[-1]["status"] == "stopped"
    for e in events:  # each stopped idea's own run logged its stop too
        if e["type"] == "idea_finished" and e["status"] == "stopped":
            lines = (opened.store.path / e["run"] / "events.jsonl").read_text().splitlines()
            assert json.loads(lines[-1])["type"] == "run_finished" and json.loads(lines[-1])["status"] == "stopped"
    resumed = await run_batch(open_batch_for_resume(opened.store.path))
    assert resumed.exit_code == 0 and resumed.summary["counts"]["done"] == 4
    assert max(steps_per_key(opened.store.path).values()) == 1


async def test_the_index_links_every_best_image_to_its_report_relatively_and_escaped(tmp_path: Path) -> None:
    ideas = ["a red <script>alert(1)</script> lighthouse", "a white boat & a \"blue\" lake"]
    result = await batch_of(tmp_path, ideas)
    page = (result.path / "index.html").read_text()
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&amp; a &quot;blue&quot; lake" in page
    summary = json.loads((result.path / "batch_summary.json").read_text())
    for row in summary["rows"]:
        assert f'href="{row["run"]}/report.html"' in page
        assert f'src="{row["run"]}/{row["best_image"]}"' in page
        assert (result.path / row["run"] / row["best_image"]).is_file()
    assert str(tmp_path) not in page  # links are relative: the folder can be moved or zipped
    assert "<link" not in page and "http" not in page.replace('content="width=device-width', "")


async def test_a_run_folder_named_outside_the_batch_is_not_followed(tmp_path: Path) -> None:
    result = await batch_of(tmp_path, FIVE[:2], iterations=1)
    log = result.path / "batch.jsonl"
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    log.write_text(log.read_text() + json.dumps({"type": "idea_started", "ts": 1.0, "idea": 2, "run": "../elsewhere"})
                   + "\n")
    resumed = await run_batch(open_batch_for_resume(result.path))
    row = resumed.summary["rows"][1]
    assert row["status"] == "failed" and "not a folder inside the batch" in row["reason"]
    assert list(outside.iterdir()) == []  # nothing written there
    assert resumed.summary["rows"][0]["status"] == "done"


async def test_the_index_links_nothing_of_an_idea_folder_that_is_a_symlink_out(tmp_path: Path) -> None:
    result = await batch_of(tmp_path, FIVE[:2], iterations=1)
    summary = json.loads((result.path / "batch_summary.json").read_text())
    row = summary["rows"][0]
    outside = tmp_path / "elsewhere"
    shutil.move(str(result.path / row["run"]), outside)
    (result.path / row["run"]).symlink_to(outside, target_is_directory=True)  # the folder now points out
    rebuild(result.path)
    page = (result.path / "index.html").read_text()
    assert f'{row["run"]}/{row["best_image"]}' not in page and f'{row["run"]}/report.html' not in page
    other = summary["rows"][1]
    assert f'src="{other["run"]}/{other["best_image"]}"' in page  # the idea inside the batch is still linked
