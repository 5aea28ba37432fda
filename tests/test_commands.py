"""show, list, report, config and run --json/--quiet through the command line, on simulator runs."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from simhelp import read_events, sim_settings
from typer.testing import CliRunner

from beamsearch.app import start_run
from beamsearch.cli import app
from beamsearch.store import RunStore

ZERO = {"BEAMSEARCH_SIM__LATENCY__TEXT__MEAN": "0", "BEAMSEARCH_SIM__LATENCY__IMAGE__MEAN": "0",
        "BEAMSEARCH_SIM__LATENCY__VISION__MEAN": "0"}


def invoke(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(app, list(args), env={**ZERO, **(env or {})})


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """Two finished simulator runs (different days) in one runs folder."""
    base = tmp_path_factory.mktemp("commands")
    for day, prompt in ((1_700_000_000, "a white boat on a blue lake"), (1_700_100_000, "a red lighthouse by the sea")):
        settings = sim_settings(base, n=4, m=2, iterations=3, prompt=prompt)
        asyncio.run(start_run(settings, now=day))
    return base / "runs"


def newest(runs: Path) -> Path:
    return sorted(runs.iterdir())[-1]


def test_show_prints_summary_best_family_tree_and_cost(runs) -> None:
    run_dir = newest(runs)
    summary = json.loads((run_dir / "summary.json").read_text())
    result = invoke("show", str(run_dir))
    assert result.exit_code == 0, result.output
    for text in ("a red lighthouse by the sea", "done", "Family tree of the best", "Cost by service",
                 summary["best"]["id"], summary["lineage"][0], "image", "vision", "text"):
        assert text in result.stdout, text


def test_show_json_has_the_family_tree_back_to_iteration_0(runs) -> None:
    result = invoke("show", str(newest(runs)), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    tree = data["family_tree"]
    assert tree[0]["iteration"] == 0 and tree[0]["parent"] is None and tree[0]["changed"] == "expanded"
    assert tree[-1]["id"] == data["best"]["id"]
    assert all(child["parent"] == parent["id"] for parent, child in zip(tree, tree[1:], strict=False))
    assert data["status"] == "done" and set(data["usage"]) == {"text", "image", "vision"}
    assert data["cost_usd"] == pytest.approx(sum(u["cost_usd"] for u in data["usage"].values()))
    assert [it["iteration"] for it in data["iterations"]] == [0, 1, 2]


def test_show_of_a_folder_that_is_not_a_run_is_one_sentence(tmp_path) -> None:
    result = invoke("show", str(tmp_path))
    assert result.exit_code == 2 and "is not a beamsearch run" in result.output and "Traceback" not in result.output
    missing = invoke("show", str(tmp_path / "nope"))
    assert missing.exit_code == 2 and "not a folder" in missing.output


def test_list_shows_runs_newest_first_with_their_status(runs) -> None:
    result = invoke("list", str(runs), "--json")
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    assert [r["prompt"] for r in listed] == ["a red lighthouse by the sea", "a white boat on a blue lake"]
    assert all(r["status"] == "done" and r["best_score"] > 0 and r["cost_usd"] > 0 for r in listed)
    names = [r["name"] for r in listed]
    assert names == sorted(names, reverse=True)
    text = invoke("list", str(runs))
    assert text.exit_code == 0 and text.stdout.count("done") == 2
    assert text.stdout.index("a red lighthouse") < text.stdout.index("a white boat")
    wide = invoke("list", str(runs), env={"COLUMNS": "200"})
    assert wide.stdout.index(names[0]) < wide.stdout.index(names[1])


def test_list_uses_the_runs_dir_of_the_settings_by_default(runs) -> None:
    result = invoke("list", "--json", env={"BEAMSEARCH_RUNS_DIR": str(runs)})
    assert result.exit_code == 0 and len(json.loads(result.stdout)) == 2


def test_list_tells_running_stopped_and_failed_apart(runs, tmp_path) -> None:
    source = newest(runs)
    folder = tmp_path / "runs"
    folder.mkdir()

    def copy(name: str, keep: Any) -> Path:
        target = folder / name
        shutil.copytree(source, target)
        lines = (target / "events.jsonl").read_text().splitlines()
        (target / "events.jsonl").write_text("".join(line + "\n" for line in keep(lines)))
        return target

    copy("stopped", lambda lines: lines[:-1])  # the process died before its run_finished record
    failed = copy("failed", lambda lines: lines[:-1] + [json.dumps({"type": "run_finished", "status": "failed",
                                                                        "reason": "too few lanes"})])
    running = copy("running", lambda lines: lines[:-1] + ['{"type": "step", "key": "torn'])  # being written
    holder = RunStore(running)
    holder.lock()
    try:
        listed = {r["name"]: r["status"] for r in json.loads(invoke("list", str(folder), "--json").stdout)}
        shown = json.loads(invoke("show", str(running), "--json").stdout)
    finally:
        holder.unlock()
    assert listed == {"stopped": "stopped", "failed": "failed", "running": "running"}
    assert shown["status"] == "running"
    assert (running / "events.jsonl").read_text().endswith('"key": "torn\n')  # reading never trims a live log
    after = {r["name"]: r["status"] for r in json.loads(invoke("list", str(folder), "--json").stdout)}
    assert after["running"] == "stopped"  # the lock is gone: nobody is writing any more
    assert json.loads(invoke("show", str(failed), "--json").stdout)["reason"] == "too few lanes"


def test_list_of_an_empty_or_missing_folder_says_no_runs_yet(tmp_path) -> None:
    for folder in (tmp_path, tmp_path / "nope"):
        result = invoke("list", str(folder))
        assert result.exit_code == 0 and result.stdout.startswith("No runs yet in "), result.output
        assert "beamsearch run --prompt" in result.stdout
        assert json.loads(invoke("list", str(folder), "--json").stdout) == []
    (tmp_path / "file").write_text("x")
    not_a_folder = invoke("list", str(tmp_path / "file"))
    assert not_a_folder.exit_code == 2 and "not a folder" in not_a_folder.output


def test_report_command_rebuilds_report_html(runs) -> None:
    run_dir = newest(runs)
    (run_dir / "report.html").unlink()
    result = invoke("report", str(run_dir))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(run_dir / "report.html")
    assert "Family tree of the best" in (run_dir / "report.html").read_text(encoding="utf-8")


def test_config_prints_yaml_without_secrets() -> None:
    result = invoke("config", env={"OPENAI_API_KEY": "sk-test-secret-123", "BEAMSEARCH_N": "12"})
    assert result.exit_code == 0
    assert "n: 12" in result.stdout and "api_key_env: OPENAI_API_KEY" in result.stdout
    assert "sk-test-secret-123" not in result.stdout


def test_run_json_is_one_event_per_line_and_nothing_else(tmp_path) -> None:
    result = invoke("run", "--provider", "sim", "--prompt", "a teal whale under a purple moon", "-n", "3", "-m", "2",
                    "--iterations", "2", "--runs-dir", str(tmp_path), "--json")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    events = []
    for number, line in enumerate(result.stdout.splitlines(), start=1):
        event = json.loads(line)  # every line parses, or this fails naming the line
        assert isinstance(event, dict) and "type" in event and "ts" in event, number
        events.append(event)
    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["run_opened", "run_started"] and kinds[-2] == "run_finished" and kinds[-1] == "result"
    assert events[0]["run_dir"] == events[-1]["run_dir"]  # a script knows the folder from the first line
    assert {"iteration_started", "stage", "step", "candidate", "ranking", "ranked"} <= set(kinds)
    final = events[-1]
    run_dir = Path(final["run_dir"])
    assert final["status"] == "done" and final["exit_code"] == 0 and final["best"]["id"] == final["lineage"][-1]
    logged = [e for e in read_events(run_dir) if e["type"] == "step"]
    assert [e["key"] for e in events if e["type"] == "step"] == [e["key"] for e in logged]


def test_run_quiet_prints_only_the_result(tmp_path) -> None:
    result = invoke("run", "--provider", "sim", "--prompt", "a teal whale", "-n", "3", "-m", "1", "--iterations", "2",
                    "--runs-dir", str(tmp_path), "--quiet")
    assert result.exit_code == 0, result.output
    assert "Best candidate" in result.stdout
    assert "step " not in result.stdout and "candidate i0c00 total" not in result.stdout


def test_run_plain_prints_one_line_per_finished_step(tmp_path) -> None:
    result = invoke("run", "--provider", "sim", "--prompt", "a teal whale", "-n", "3", "-m", "1", "--iterations", "2",
                    "--runs-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    run_dir = next(tmp_path.iterdir())
    steps = [e for e in read_events(run_dir) if e["type"] == "step"]
    lines = [line for line in result.stdout.splitlines() if line.startswith("step ")]
    assert len(lines) == len(steps)
    assert all(f"step {e['key']} ({e['service']})" in line for e, line in zip(steps, lines, strict=True))


def test_run_json_stopped_by_the_budget_keeps_stdout_json_and_talks_on_stderr(tmp_path) -> None:
    result = invoke("run", "--provider", "sim", "--prompt", "a teal whale", "-n", "4", "-m", "2", "--iterations", "3",
                    "--runs-dir", str(tmp_path), "--max-cost", "0.2", "--json")
    assert result.exit_code == 3
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events[-1]["type"] == "result" and events[-1]["status"] == "stopped" and events[-1]["exit_code"] == 3
    assert "budget" in result.stderr and "beamsearch resume" in result.stderr
    listed = json.loads(invoke("list", str(tmp_path), "--json").stdout)
    assert [r["status"] for r in listed] == ["stopped"]
