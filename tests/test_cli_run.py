"""`beamsearch run` end to end through the command line, offline."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from beamsearch.cli import app

ZERO = ["--provider", "sim"]
ENV = {"BEAMSEARCH_SIM__LATENCY__TEXT__MEAN": "0", "BEAMSEARCH_SIM__LATENCY__IMAGE__MEAN": "0",
       "BEAMSEARCH_SIM__LATENCY__VISION__MEAN": "0"}


def test_run_prints_the_best_candidate_and_the_folder(tmp_path) -> None:
    result = CliRunner().invoke(app, ["run", *ZERO, "--prompt", "a white boat on a blue lake", "-n", "4", "-m", "2",
                                      "--iterations", "2", "--runs-dir", str(tmp_path)], env=ENV)
    assert result.exit_code == 0, result.output
    run_dir = next(tmp_path.iterdir())
    assert "Best candidate" in result.output and "run folder" in result.output
    assert "simulator (offline; images and scores are simulated)" in result.output and "(simulated)" in result.output
    assert "candidate i0c00 total" in result.output  # plain progress lines, as stdout is not a terminal
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["best"]["id"] in result.output
    assert summary["status"] == "done"


def test_run_json_writes_only_json_lines(tmp_path) -> None:
    result = CliRunner().invoke(app, ["run", *ZERO, "--prompt", "a teal whale", "-n", "3", "-m", "1", "--iterations", "2",
                                      "--runs-dir", str(tmp_path), "--json"], env=ENV)
    assert result.exit_code == 0
    events = [json.loads(line) for line in result.stdout.splitlines()]
    kinds = {e["type"] for e in events}
    assert {"run_started", "step", "candidate", "ranking", "run_finished"} <= kinds


def test_run_without_prompt_is_bad_usage(tmp_path) -> None:
    result = CliRunner().invoke(app, ["run", *ZERO, "--runs-dir", str(tmp_path)])
    assert result.exit_code == 2 and "No prompt given" in result.output and "Traceback" not in result.output


def test_blank_or_undecodable_prompt_is_refused_before_a_folder_is_made(tmp_path) -> None:
    for prompt, message in (("   ", "No prompt given"), ("fox \udcff in snow", "not valid UTF-8")):
        result = CliRunner().invoke(app, ["run", *ZERO, "--prompt", prompt, "--runs-dir", str(tmp_path / "runs")])
        assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "runs").exists()


def test_module_entry_point_and_help() -> None:
    done = subprocess.run([sys.executable, "-m", "beamsearch", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "run" in done.stdout
