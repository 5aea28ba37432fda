"""Issue 14, finding 11: a full disk is one sentence and the run stays resumable (ENOSPC is simulated
by making os.write fail for files in the runs folder from the n-th write on)."""

from __future__ import annotations

import builtins
import errno
import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from beamsearch.cli import app

ZERO = {"BEAMSEARCH_SIM__LATENCY__TEXT__MEAN": "0", "BEAMSEARCH_SIM__LATENCY__IMAGE__MEAN": "0",
        "BEAMSEARCH_SIM__LATENCY__VISION__MEAN": "0"}


def fill_disk_after(monkeypatch: pytest.MonkeyPatch, runs: Path, writes: int) -> list[str]:
    """From the `writes`-th write on, writes to files under `runs` fail with ENOSPC (others pass), by
    os.write or through a file object from open(), whichever way the code writes."""
    real_write, real_open = os.write, builtins.open
    seen: list[str] = []

    def full(target: str) -> bool:
        if not target.startswith(str(runs)):
            return False
        seen.append(target)
        return len(seen) >= writes

    def write(fd: int, data) -> int:
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            target = ""
        if full(target):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    class Filling:
        def __init__(self, handle, target: str) -> None:
            self._handle, self._target = handle, target

        def write(self, data):
            if full(self._target):
                raise OSError(errno.ENOSPC, "No space left on device")
            return self._handle.write(data)

        def __getattr__(self, name):
            return getattr(self._handle, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._handle.close()

        def __iter__(self):
            return iter(self._handle)

    def opener(file, mode="r", *args, **kwargs):
        handle = real_open(file, mode, *args, **kwargs)
        target = os.fspath(file) if isinstance(file, str | os.PathLike) else ""
        return Filling(handle, os.path.abspath(target)) if target and set(mode) & set("wax+") else handle

    monkeypatch.setattr(os, "write", write)
    monkeypatch.setattr(builtins, "open", opener)
    return seen


@pytest.mark.parametrize("writes", [3, 12, 40])
def test_a_full_disk_is_one_sentence_and_the_run_resumes(tmp_path, monkeypatch, writes) -> None:
    runs = tmp_path / "runs"
    seen = fill_disk_after(monkeypatch, runs, writes)
    result = CliRunner().invoke(app, ["run", "--provider", "sim", "-p", "a white boat on a blue lake", "-n", "3",
                                      "-m", "1", "-i", "2", "--runs-dir", str(runs), "--quiet"], env=ZERO)
    assert len(seen) >= writes  # the disk really filled up during the run
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and "internal error" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "The disk is full" in errors[0] and "no space left on device" in errors[0]
    run = next(runs.iterdir())
    lines = (run / "events.jsonl").read_text().splitlines()
    assert all(isinstance(json.loads(line), dict) for line in lines)  # no line was left half-written
    assert not [p for p in run.rglob("*.tmp")]  # nor a temp file
    monkeypatch.undo()  # room again
    resumed = CliRunner().invoke(app, ["resume", str(run), "--quiet"], env=ZERO)
    assert resumed.exit_code == 0, resumed.output
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "done" and len(summary["iterations"]) == 2


def test_a_disk_full_before_the_run_folder_is_whole_leaves_no_folder(tmp_path, monkeypatch) -> None:
    runs = tmp_path / "runs"
    fill_disk_after(monkeypatch, runs, 1)  # run.yaml cannot be written
    result = CliRunner().invoke(app, ["run", "--provider", "sim", "-p", "a white boat", "-n", "2", "-m", "1", "-i", "1",
                                      "--runs-dir", str(runs), "--quiet"], env=ZERO)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert [line for line in result.stderr.splitlines() if line.startswith("Error:")][0].startswith(
        "Error: The disk is full")
    assert list(runs.iterdir()) == []


def test_nothing_more_is_paid_for_once_the_disk_is_full(tmp_path, monkeypatch) -> None:
    """The first write the disk refuses stops the gate: no model call starts after it (calls already in
    flight may finish; their answers cannot be recorded, so a resume asks them again)."""
    from beamsearch.providers.sim import Simulator

    runs = tmp_path / "runs"
    seen = fill_disk_after(monkeypatch, runs, 12)
    started: list[int] = []  # how many writes had been tried when each call started
    for name in ("complete", "generate", "judge"):
        real = getattr(Simulator, name)

        async def counted(self, request, _real=real):
            started.append(len(seen))
            return await _real(self, request)

        monkeypatch.setattr(Simulator, name, counted)
    result = CliRunner().invoke(app, ["run", "--provider", "sim", "-p", "a white boat on a blue lake", "-n", "4",
                                      "-m", "2", "-i", "3", "--runs-dir", str(runs), "--quiet"], env=ZERO)
    assert result.exit_code == 1, result.output
    assert started and min(started) < 12  # calls were made before the disk filled up
    assert [count for count in started if count >= 12] == []
