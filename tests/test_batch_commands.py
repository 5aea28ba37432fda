"""`batch`, and `list`, `show`, `report`, `resume` and `estimate --batch` on batches, through the command
line, offline; and the plan of a batch: how many ideas at once, and a time bound with shared limits."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from batchhelp import FIVE, ZERO, ideas_file, offline
from typer.testing import CliRunner

from beamsearch.batch_estimate import estimate_batch, ideas_at_once
from beamsearch.batch_file import idea_settings, read_ideas
from beamsearch.batch_open import shared_settings
from beamsearch.cli import app
from beamsearch.estimate import estimate

EXAMPLE = Path(__file__).resolve().parent.parent / "configs" / "batch-example.yaml"


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), env=ZERO)


def test_the_example_batch_runs_offline_and_every_command_reads_it(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    result = invoke("batch", str(EXAMPLE), "--provider", "sim", "--runs-dir", str(runs), "--iterations", "2")
    assert result.exit_code == 0, result.output
    (batch_dir,) = runs.iterdir()
    ideas = read_ideas(EXAMPLE)
    assert "batch done" in result.stderr and batch_dir.name[:20] in result.stdout
    folders = [p for p in batch_dir.iterdir() if p.is_dir()]
    assert len(folders) == len(ideas) and all((f / "report.html").is_file() for f in folders)
    assert {p.name for p in batch_dir.iterdir() if p.is_file()} >= {"batch.yaml", "batch.jsonl", "batch_summary.json",
                                                                    "index.html"}

    listed = json.loads(invoke("list", str(runs), "--json").stdout)
    assert [(r["kind"], r["status"], r["ideas"], r["ideas_done"]) for r in listed] == [("batch", "done", len(ideas),
                                                                                        len(ideas))]
    assert listed[0]["cost_usd"] > 0
    assert "batch of" in invoke("list", str(runs)).stdout

    shown = json.loads(invoke("show", str(batch_dir), "--json").stdout)
    assert [r["prompt"] for r in shown["rows"]] == [i.prompt for i in ideas]
    assert all(r["status"] == "done" and r["best_total"] > 0 and r["cost_usd"] > 0 for r in shown["rows"])
    own = [i for i in ideas if i.settings.get("n")][0]  # an idea's own settings reached its run
    run = next(r for r in shown["rows"] if r["idea"] == own.number)["run"]
    assert json.loads(invoke("show", str(batch_dir / run), "--json").stdout)["search"]["n"] == own.settings["n"]
    assert "idea" in invoke("show", str(batch_dir)).stdout

    (batch_dir / "index.html").unlink()
    assert invoke("report", str(batch_dir)).exit_code == 0 and (batch_dir / "index.html").is_file()
    again = invoke("resume", str(batch_dir))
    assert again.exit_code == 2 and "Every idea of this batch is done" in again.stderr


def test_batch_json_writes_only_json_lines_ending_with_the_result(tmp_path: Path) -> None:
    result = invoke("batch", str(ideas_file(tmp_path, FIVE[:2])), "--provider", "sim", "-n", "3", "-m", "1",
                    "--iterations", "1", "--runs-dir", str(tmp_path / "runs"), "--json")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    kinds = [line["type"] for line in lines]
    assert kinds[0] == "batch_started" and kinds[-2:] == ["batch_finished", "batch_result"]
    assert kinds.count("idea_started") == kinds.count("idea_finished") == 2
    assert lines[-1]["exit_code"] == 0 and lines[-1]["counts"]["done"] == 2


def test_one_idea_folder_resumes_and_shows_on_its_own(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    assert invoke("batch", str(ideas_file(tmp_path, FIVE[:2])), "--provider", "sim", "-n", "3", "-m", "1",
                  "--iterations", "1", "--runs-dir", str(runs), "--quiet").exit_code == 0
    batch_dir = next(runs.iterdir())
    run = next(p for p in batch_dir.iterdir() if p.is_dir())
    extended = invoke("resume", str(run), "--iterations", "2", "--quiet")
    assert extended.exit_code == 0, extended.output
    assert json.loads(invoke("show", str(run), "--json").stdout)["iterations"][-1]["iteration"] == 1
    row = next(r for r in json.loads(invoke("show", str(batch_dir), "--json").stdout)["rows"] if r["run"] == run.name)
    assert row["iterations_done"] == 2  # show reads the idea's own folder, the truth of that idea


def test_a_killed_batch_is_listed_as_stopped_with_its_spend(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    assert invoke("batch", str(ideas_file(tmp_path, FIVE[:2])), "--provider", "sim", "-n", "3", "-m", "1",
                  "--iterations", "1", "--runs-dir", str(runs), "--quiet").exit_code == 0
    batch_dir = next(runs.iterdir())
    log = batch_dir / "batch.jsonl"
    lines = log.read_text().splitlines()
    log.write_text("\n".join(line for line in lines if '"idea_finished"' not in line and '"batch_finished"' not in line)
                   + '\n{"type": "idea_fin')  # killed mid-write
    (listed,) = json.loads(invoke("list", str(runs), "--json").stdout)
    assert listed["status"] == "stopped" and listed["ideas_done"] == 2 and listed["cost_usd"] > 0  # read from the runs
    shutil.rmtree(next(p for p in batch_dir.iterdir() if p.is_dir()))
    rows = json.loads(invoke("show", str(batch_dir), "--json").stdout)["rows"]
    assert sorted(r["status"] for r in rows) == ["done", "unreadable"]


def test_estimate_of_a_batch_sums_its_ideas_and_bounds_the_time_by_the_shared_rate(tmp_path: Path) -> None:
    path = ideas_file(tmp_path, [f"idea number {i}" for i in range(16)])
    flags = {"n": 9, "m": 3, "iterations": 3, "sim.latency.text.mean": 0.2, "sim.latency.image.mean": 1.0,
             "sim.latency.vision.mean": 0.3, "limits.image.rpm": 120, "limits.image.concurrency": 256,
             "limits.window_s": 10}
    settings = offline(tmp_path, **flags)
    shared = shared_settings(settings)
    ideas = [idea_settings(shared, idea, path.name) for idea in read_ideas(path)]
    one = estimate(ideas[0]).to_dict()
    data = estimate_batch(shared, ideas, 4)
    assert data["calls"]["total"] == 16 * one["calls"]["total"]
    assert data["calls"]["by_service"]["image"] == 16 * 27
    assert abs(data["cost"]["low_usd"] - 16 * one["cost"]["low_usd"]) < 1e-3
    # 432 images at 20 per 10 s: the last starts 21 windows after the first, whatever the ideas do
    assert data["time"]["bound_by"] == "image rate over the batch"
    assert data["time"]["seconds"] >= 210 > one["time"]["seconds"]
    result = CliRunner().invoke(app, ["estimate", "--batch", str(path), "--provider", "sim", "--json",
                                      "-n", "9", "-m", "3", "--iterations", "3"],
                                env={"BEAMSEARCH_LIMITS__IMAGE__RPM": "120", "BEAMSEARCH_LIMITS__WINDOW_S": "10"})
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["calls"]["by_service"]["image"] == 16 * 27


def test_enough_ideas_run_at_once_to_keep_the_busiest_service_full(tmp_path: Path) -> None:
    latency = {"sim.latency.text.mean": 0.2, "sim.latency.image.mean": 1.0, "sim.latency.vision.mean": 0.3}
    ideas = [f"idea {i}" for i in range(40)]

    def at_once(**flags: object) -> int:
        shared = shared_settings(offline(tmp_path, n=9, m=3, iterations=3, **latency, **flags))
        per_idea = [shared.model_copy(update={"prompt": text}) for text in ideas]
        return ideas_at_once(shared, per_idea)

    # 2 images per second in flight at most; one idea keeps 27 images x 1 s / 5.5 s = 4.9 in flight
    assert at_once(**{"limits.image.rpm": 120}) == 1 + 1
    # 16 images at once allowed: 16 / 4.9 -> 4 ideas fill it, one more covers a barrier
    assert at_once(**{"limits.image.concurrency": 16, "limits.image.rpm": 100000}) == 4 + 1
    assert at_once() == 40  # the simulator's open limits: every idea at once (at most 64)


def test_list_sorts_a_batch_among_runs_and_dates_it_in_unix_seconds(tmp_path: Path) -> None:
    """A batch's `created` is Unix seconds like a run's: `list` sorts both together (a str among floats made it
    crash), prints the batch's date, and `list --json` and `show BATCH --json` give numbers."""
    runs = tmp_path / "runs"
    assert invoke("batch", str(ideas_file(tmp_path, FIVE[:1])), "--provider", "sim", "-n", "2", "-m", "1",
                  "--iterations", "1", "--runs-dir", str(runs), "--quiet").exit_code == 0
    assert invoke("run", "--provider", "sim", "--prompt", "a lone run", "-n", "2", "-m", "1", "--iterations", "1",
                  "--runs-dir", str(runs), "--quiet").exit_code == 0
    listed = invoke("list", str(runs), "--json")
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)
    assert sorted(r["kind"] for r in rows) == ["batch", "run"]
    assert all(isinstance(r["created"], float) for r in rows)
    table = invoke("list", str(runs))
    assert table.exit_code == 0, table.output
    batch = next(r for r in rows if r["kind"] == "batch")
    assert time.strftime("%Y-%m-%d", time.localtime(batch["created"])) in table.stdout
    assert isinstance(json.loads(invoke("show", batch["path"], "--json").stdout)["created"], float)


def test_a_lifted_budget_is_no_budget_for_a_batch_and_its_estimate(tmp_path: Path) -> None:
    """`--max-cost none` on a batch is no budget (it reached Budget as the string 'none' and crashed the batch, and
    `estimate --batch` compared it with a float)."""
    ideas = ideas_file(tmp_path, FIVE[:1])
    result = invoke("batch", str(ideas), "--provider", "sim", "-n", "2", "-m", "1", "--iterations", "1",
                    "--runs-dir", str(tmp_path / "runs"), "--max-cost", "none", "--quiet")
    assert result.exit_code == 0, result.output
    planned = invoke("estimate", "--batch", str(ideas), "--provider", "sim", "--max-cost", "none", "--json")
    assert planned.exit_code == 0, planned.output


def test_a_paid_batch_has_the_default_budget_unless_one_is_set_or_lifted(tmp_path: Path) -> None:
    """As a paid run does: one budget for the whole batch, $2.50 unless --max-cost sets another or none lifts it."""
    from beamsearch.batch import BatchRunner
    from beamsearch.batch_open import open_new_batch
    from beamsearch.config import DEFAULT_BUDGET_USD
    from beamsearch.precedence import resolve

    ideas = ideas_file(tmp_path, FIVE[:1])
    flags = {"provider": "openai", "n": 2, "m": 1, "iterations": 1, "image.size": "64x64"}
    for role in ("text", "image", "vision"):
        flags.update({f"{role}.base_url": "http://127.0.0.1:9/v1", f"{role}.api_key_env": "none"})
    limits = []
    for name, budget in (("unset", {}), ("set", {"max_cost_usd": 7}), ("lifted", {"max_cost_usd": "none"})):
        settings = resolve(None, {**flags, **budget, "runs_dir": str(tmp_path / name)}, environ={})
        limits.append(BatchRunner(open_new_batch(ideas, settings)).budget.limit)
    assert limits == [DEFAULT_BUDGET_USD, 7.0, None]
    many = ideas_file(tmp_path, [f"idea number {i}" for i in range(12)], name="many.txt")
    shared = shared_settings(resolve(None, {**flags, "n": 9, "m": 3, "iterations": 3, "image.size": "1024x1024"},
                                     environ={}))
    plans = [idea_settings(shared, idea, many.name) for idea in read_ideas(many)]
    notes = estimate_batch(shared, plans, 4)["notes"]
    assert any("the default budget ($2.50)" in note for note in notes)
