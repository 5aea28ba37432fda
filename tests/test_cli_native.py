"""The command line feels native (issue 15, item 4): --version, -h everywhere, defaults, choices and an
example in every help, one-line flag errors naming the flag, --debug anywhere, `list` without runs,
no .lock left behind, one time stamp format in every --json."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from simhelp import sim_settings
from typer.main import get_command
from typer.testing import CliRunner

from beamsearch import __version__
from beamsearch.app import start_run
from beamsearch.cli import app
from beamsearch.cliapp import take_debug
from beamsearch.store import LOCK_FILE, RunStore

COMMANDS = tuple(get_command(app).commands)  # every command, also ones added later
ZERO = {"BEAMSEARCH_SIM__LATENCY__TEXT__MEAN": "0", "BEAMSEARCH_SIM__LATENCY__IMAGE__MEAN": "0",
        "BEAMSEARCH_SIM__LATENCY__VISION__MEAN": "0"}


def invoke(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200", **ZERO, **(env or {})})


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("native")
    return asyncio.run(start_run(sim_settings(base, n=2, m=1, iterations=1))).store.path


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"beamsearch {__version__}"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_help_answers_to_h_with_an_example_and_no_placeholders(command) -> None:
    short, long = invoke(command, "-h"), invoke(command, "--help")
    assert short.exit_code == long.exit_code == 0 and short.stdout == long.stdout
    text = short.stdout
    assert f"Usage: beamsearch {command} [OPTIONS]" in text and "{" not in text.split("\n\n", 2)[1]
    assert "Example" in text and f"beamsearch {command}" in text.split("Example", 1)[1]
    assert "<bool>" not in text and "(as recorded)" not in text


def test_the_commands_are_all_there() -> None:
    assert {"run", "resume", "config", "show", "list", "report", "estimate"} <= set(COMMANDS)


def test_root_help_and_usage() -> None:
    result = invoke("-h")
    assert result.exit_code == 0 and "--version" in result.stdout and "--debug" in result.stdout
    assert "<bool>" not in result.stdout and "Example" in result.stdout
    assert "Usage: beamsearch show [OPTIONS] RUN_DIR" in invoke("show", "-h").stdout
    assert "Usage: beamsearch list [OPTIONS] [RUNS_DIR]" in invoke("list", "-h").stdout


def test_run_help_shows_the_settings_defaults_and_the_choices() -> None:
    from beamsearch.config import Settings

    text = " ".join(invoke("run", "-h").stdout.split())
    defaults = Settings()
    for option, value in (("-n", defaults.n), ("-m", defaults.m), ("--iterations", defaults.iterations),
                          ("--alpha", defaults.alpha), ("--seed", defaults.seed), ("--runs-dir", defaults.runs_dir)):
        assert f"[default: {value}]" in text.split(option, 1)[1].split("│ -", 1)[0], option
    for choices in ("<openai|sim>", "<rating|checklist>", "<scores|pairwise>"):
        assert choices in text
    assert "[default: as recorded]" in " ".join(invoke("resume", "-h").stdout.split())


@pytest.mark.parametrize(("args", "flag"), [
    (["run", "--max-cost", "abc"], "--max-cost must be a number"),  # a setting's check, naming the flag
    (["run", "--provider", "nope"], "'--provider'"),
    (["run", "--ranking", "best"], "'--ranking'"),
    (["run", "--bogus"], "--bogus"),
    (["show"], "'RUN_DIR'"),
    (["nope"], "'nope'"),
])
def test_a_flag_error_is_one_line_naming_the_flag(args, flag) -> None:
    result = invoke(*args)
    assert result.exit_code == 2 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and flag in lines[0], result.stderr
    assert "╭" not in result.stderr
    assert "-h" in lines[0] or "must be" in flag  # the parser's errors point to the help


def test_debug_anywhere_on_the_command_line(tmp_path) -> None:
    for args in (["--debug", "show", str(tmp_path)], ["show", str(tmp_path), "--debug"], ["show", "--debug", str(tmp_path)]):
        result = invoke(*args)
        assert result.exit_code == 2 and "Traceback" in result.stderr and "RunFolderError" in result.stderr, args
    quiet = invoke("show", str(tmp_path))
    assert quiet.exit_code == 2 and "Traceback" not in quiet.stderr


def test_debug_is_not_taken_from_an_option_value_or_after_a_double_dash() -> None:
    from typer.main import get_command

    from beamsearch.cli import app as typer_app

    commands = get_command(typer_app).commands
    assert take_debug(["run", "--prompt", "--debug"], commands) == (["run", "--prompt", "--debug"], False)
    assert take_debug(["run", "-p", "x", "--debug"], commands) == (["run", "-p", "x"], True)
    assert take_debug(["show", "--", "--debug"], commands) == (["show", "--", "--debug"], False)


def test_list_of_a_run_folder_points_to_show(run_dir) -> None:
    result = invoke("list", str(run_dir))
    assert result.exit_code == 2 and "is a run folder" in result.stderr
    assert f"beamsearch show {run_dir}" in result.stderr


def test_list_without_a_runs_folder_says_no_runs_yet(tmp_path) -> None:
    result = invoke("list", env={"BEAMSEARCH_RUNS_DIR": str(tmp_path / "runs")})
    assert result.exit_code == 0 and result.stdout.startswith("No runs yet")


def test_no_lock_is_left_after_a_run_or_a_refused_resume(run_dir, tmp_path) -> None:
    assert not (run_dir / LOCK_FILE).exists()
    refused = invoke("resume", str(run_dir))  # finished: refused after taking the lock
    assert refused.exit_code == 2 and not (run_dir / LOCK_FILE).exists()
    result = invoke("run", "--provider", "sim", "-p", "a teal whale", "-n", "2", "-m", "1", "--iterations", "1",
                    "--runs-dir", str(tmp_path))
    assert result.exit_code == 0 and not (next(tmp_path.iterdir()) / LOCK_FILE).exists()


def test_the_lock_file_is_removed_only_by_its_holder(tmp_path) -> None:
    first = RunStore(tmp_path)
    first.lock()
    second = RunStore(tmp_path)
    with pytest.raises(Exception, match="in use by process"):
        second.lock()
    (tmp_path / LOCK_FILE).unlink()  # someone removed it; a next writer made and locked its own
    second.lock()
    first.unlock()  # no longer the lock file: the other writer's file stays
    assert (tmp_path / LOCK_FILE).exists()
    with pytest.raises(Exception, match="in use by process"):
        RunStore(tmp_path).lock()
    second.unlock()
    assert not (tmp_path / LOCK_FILE).exists()


def test_every_time_in_json_is_unix_seconds(run_dir) -> None:
    started = next(json.loads(line)["ts"] for line in (run_dir / "events.jsonl").read_text().splitlines())
    shown = json.loads(invoke("show", str(run_dir), "--json").stdout)
    listed = json.loads(invoke("list", str(run_dir.parent), "--json").stdout)
    for created in (shown["created"], listed[0]["created"]):
        assert isinstance(created, float) and abs(created - started) < 5
    assert abs(started - time.time()) < 3600


def test_root_help_imports_nothing_heavy() -> None:
    code = ("import sys; sys.argv = ['beamsearch', '--help']\n"
            "from beamsearch.cli import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('pydantic', 'openai', 'PIL', 'yaml', 'httpx2', 'beamsearch.config', 'asyncio')"
            " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("args", [["config"], ["list", "--json"]])
def test_a_reader_that_goes_away_is_not_called_an_internal_error(args, tmp_path) -> None:
    """`beamsearch config | head`: once the pipe's reader has gone, the command stops quietly (exit 1), as its rich
    tables already did, instead of calling the BrokenPipeError a bug on stderr."""
    import os

    (tmp_path / "runs").mkdir()
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the command writes a byte
    try:
        done = subprocess.run([sys.executable, "-m", "beamsearch", *args, *(["runs"] if args[0] == "list" else [])],
                              cwd=tmp_path, stdout=write, stderr=subprocess.PIPE, text=True, timeout=60,
                              env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    finally:
        os.close(write)
    assert done.returncode == 1
    assert done.stderr == ""
