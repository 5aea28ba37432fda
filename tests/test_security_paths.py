"""Issue 14, finding 1: a run folder is confined. Every path read from a folder resolves inside it (no
`..`, no absolute path, no symlink out); anything else is one sentence naming the file and the line, and
nothing outside the folder is read, written or uploaded (issue 14, finding 11: files get the umask)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import stat
from pathlib import Path

import pytest
from simhelp import copied_run, finished_run, sim_settings
from test_bad_folders import invoke, one_sentence

from beamsearch.app import start_run


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    return finished_run(tmp_path_factory.mktemp("confined"), n=2, m=1, iterations=2)


@pytest.fixture
def run_dir(finished, tmp_path) -> Path:
    return copied_run(finished, tmp_path)


@pytest.fixture
def victim(tmp_path, finished) -> Path:
    """A PNG outside the run folder that a hostile log points at (a real PNG, so any tool would take it)."""
    outside = tmp_path / "victim"
    outside.mkdir()
    path = outside / "victim.png"
    shutil.copyfile(next((finished / "images").glob("*.png")), path)
    return path


def rewrite(run_dir: Path, change) -> int:
    """Apply `change` to every event of the log (it returns True when it changed one); the last line changed."""
    log = run_dir / "events.jsonl"
    events = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    changed = [number for number, event in enumerate(events, start=1) if change(event)]
    log.write_text("".join(json.dumps(e) + "\n" for e in events))
    assert changed
    return changed[-1]


def untouched(path: Path, before: bytes) -> None:
    assert path.read_bytes() == before


def test_a_step_path_that_climbs_out_is_refused_and_the_outside_png_is_not_rewritten(run_dir, victim) -> None:
    relative = os.path.relpath(victim, run_dir)
    assert relative.startswith("..")

    def climb(event):
        if event["type"] == "step" and event["key"] == "i0/c00/image":
            event["result"]["path"] = relative
            return True
        return False

    line = rewrite(run_dir, climb)
    before = victim.read_bytes()
    for command in (("resume", str(run_dir), "-i", "3", "--quiet"), ("show", str(run_dir)), ("report", str(run_dir))):
        one_sentence(invoke(*command), "events.jsonl line", str(line), "climbs out", code=2)
    untouched(victim, before)
    assert list(victim.parent.iterdir()) == [victim]


def test_a_best_image_with_an_absolute_path_is_never_copied(run_dir, victim) -> None:
    def absolute(event):
        if event["type"] == "candidate":
            event["image"] = str(victim)
            return True
        return False

    rewrite(run_dir, absolute)
    (run_dir / "best.png").unlink()
    one_sentence(invoke("resume", str(run_dir), "-i", "3", "--quiet"), "absolute path", code=2)
    assert not (run_dir / "best.png").exists()


def test_an_image_that_is_a_symlink_out_of_the_folder_is_not_judged_linked_or_rewritten(run_dir, victim) -> None:
    image = run_dir / "images" / "i0c00.png"
    image.unlink()
    image.symlink_to(victim)
    before = victim.read_bytes()
    for command in (("resume", str(run_dir), "-i", "3", "--quiet"), ("report", str(run_dir)), ("show", str(run_dir))):
        one_sentence(invoke(*command), "images/i0c00.png", "symlink", code=2)
    untouched(victim, before)
    listed = invoke("list", str(run_dir.parent), "--json")
    assert listed.exit_code == 0
    assert json.loads(listed.stdout)[0]["status"] == "unreadable"


def test_a_planted_lock_or_log_symlink_is_not_written_through(run_dir, tmp_path) -> None:
    precious = tmp_path / "precious.txt"
    precious.write_text("do not truncate me\n")
    (run_dir / ".lock").unlink(missing_ok=True)
    (run_dir / ".lock").symlink_to(precious)
    result = invoke("resume", str(run_dir), "-i", "3", "--quiet")
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert precious.read_text() == "do not truncate me\n"
    (run_dir / ".lock").unlink()
    log = run_dir / "events.jsonl"
    outside_log = tmp_path / "outside-events.jsonl"
    shutil.copyfile(log, outside_log)
    log.unlink()
    log.symlink_to(outside_log)
    before = outside_log.read_bytes()
    one_sentence(invoke("resume", str(run_dir), "-i", "3", "--quiet"), "events.jsonl", "symlink", code=2)
    one_sentence(invoke("show", str(run_dir)), "events.jsonl", "symlink", code=2)
    assert outside_log.read_bytes() == before


def test_the_best_copy_does_not_write_through_a_planted_temp_symlink(run_dir, tmp_path) -> None:
    precious = tmp_path / "precious.txt"
    precious.write_text("keep\n")
    (run_dir / ".best.png.tmp").symlink_to(precious)  # the temp name the copy used before
    result = invoke("resume", str(run_dir), "-i", "3", "--quiet")
    assert result.exit_code == 0, result.output
    assert precious.read_text() == "keep\n"
    assert (run_dir / "best.png").is_file() and not (run_dir / "best.png").is_symlink()


def test_the_one_rule(tmp_path) -> None:
    from beamsearch.errors import RunFolderError
    from beamsearch.files import confined, outside_reason

    folder = tmp_path / "run"
    (folder / "images").mkdir(parents=True)
    (folder / "images" / "a.png").write_bytes(b"x")
    (folder / "images" / "inside").symlink_to(folder / "images" / "a.png")
    (folder / "images" / "out").symlink_to(tmp_path)
    assert confined(folder, "images/a.png") == folder / "images" / "a.png"
    assert confined(folder, "images/inside") == folder / "images" / "inside"
    assert outside_reason(folder, "images/missing.png") is None  # a missing file is redone, not refused
    for bad in ("../x.png", "/etc/passwd", "images/../../x", "images/out/x.png", "", ".", None, 3, "a\\b", "a\x00b"):
        assert outside_reason(folder, bad) is not None, bad
        with pytest.raises(RunFolderError):
            confined(folder, bad, "events.jsonl line 7")


def test_files_in_a_run_folder_get_the_users_umask(tmp_path) -> None:
    old = os.umask(0o022)
    try:
        from beamsearch import files

        files.umask.cache_clear()
        result = asyncio.run(start_run(sim_settings(tmp_path, n=2, m=1, iterations=1, prompt="a red kite")))
    finally:
        os.umask(old)
        files.umask.cache_clear()
    run = result.store.path
    for name in ("run.yaml", "events.jsonl", "summary.json", "report.html", "best.png", "images/i0c00.png"):
        mode = stat.S_IMODE((run / name).stat().st_mode)
        assert mode == 0o644, (name, oct(mode))
