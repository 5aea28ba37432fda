"""Bad run folders, bad files and bad paths: one clear sentence and a non-zero exit, never a traceback,
and never a lost run. Permission failures are staged by making the one failing call raise
PermissionError, because the tests (and CI) run as root, for whom chmod blocks nothing."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest
import yaml
from simhelp import copied_run, finished_run
from typer.testing import CliRunner

from beamsearch import runs as runs_module
from beamsearch.cli import app
from beamsearch.errors import SettingsError
from beamsearch.events import RunFinished
from beamsearch.store import RunStore
from beamsearch.templates import Templates

ZERO = {"BEAMSEARCH_SIM__LATENCY__TEXT__MEAN": "0", "BEAMSEARCH_SIM__LATENCY__IMAGE__MEAN": "0",
        "BEAMSEARCH_SIM__LATENCY__VISION__MEAN": "0"}


def invoke(*args: str, env: dict[str, str | None] | None = None):
    return CliRunner().invoke(app, list(args), env={**ZERO, **(env or {})})


def one_sentence(result, *fragments: str, code: int = 2) -> str:
    """The command failed with `code`, said one `Error:` line holding every fragment, and no traceback."""
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    return errors[0]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """One finished simulator run (2 iterations), copied by each test that damages it."""
    return finished_run(tmp_path_factory.mktemp("bad"), n=3, m=2, iterations=2)


@pytest.fixture
def run_dir(finished, tmp_path) -> Path:
    return copied_run(finished, tmp_path)


def log_lines(run_dir: Path) -> list[str]:
    return (run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines()


# --- 1. a log whose last line lost its newline --------------------------------------------------------


def test_a_log_without_its_final_newline_resumes_and_stays_readable(run_dir) -> None:
    log = run_dir / "events.jsonl"
    log.write_bytes(log.read_bytes().rstrip(b"\n"))  # e.g. the disk filled up before the newline
    before = len(log_lines(run_dir))
    resumed = invoke("resume", str(run_dir), "-i", "3", "--quiet")
    assert resumed.exit_code == 0, resumed.output
    lines = log_lines(run_dir)
    assert all(isinstance(json.loads(line), dict) for line in lines)  # nothing was glued together
    assert len(lines) > before and json.loads(lines[before - 1])["type"] == "run_finished"
    shown = invoke("show", str(run_dir), "--json")
    assert shown.exit_code == 0, shown.output
    assert len(json.loads(shown.stdout)["iterations"]) == 3


def test_append_ends_a_complete_last_line_and_cuts_a_torn_one(tmp_path) -> None:
    store = RunStore.create(tmp_path, "x", {"prompt": "x"})
    log = store.path / "events.jsonl"
    log.write_bytes(b'{"type": "run_started"}')
    store.append(RunFinished())
    store.close()
    assert [json.loads(line)["type"] for line in log.read_text().splitlines()] == ["run_started", "run_finished"]
    log.write_bytes(b'{"type": "run_started"}\n{"type": "ste')
    again = RunStore.open(store.path)
    again.append(RunFinished())
    again.close()
    assert [json.loads(line)["type"] for line in log.read_text().splitlines()] == ["run_started", "run_finished"]
    assert "cut off" in again.warnings[0]


# --- 2. runs folders that cannot hold a new run ------------------------------------------------------


def test_run_with_a_runs_dir_that_is_a_file_or_under_a_file(tmp_path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    for runs_dir in (afile, afile / "sub"):
        result = invoke("run", "-p", "a fox", "--provider", "sim", "-n", "2", "-m", "1", "-i", "1",
                        "--runs-dir", str(runs_dir))
        one_sentence(result, "Cannot make a run folder in", str(runs_dir), "not a directory")
    assert afile.read_text() == "not a folder"


def test_run_with_a_read_only_runs_dir(tmp_path, monkeypatch) -> None:
    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    real_mkdir = Path.mkdir

    def refuse(self, *args, **kwargs):
        if self.parent == runs_dir:
            raise PermissionError(13, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", refuse)
    result = invoke("run", "-p", "a fox", "--provider", "sim", "-n", "2", "-m", "1", "-i", "1", "--runs-dir", str(runs_dir))
    line = one_sentence(result, "Cannot make a run folder in", str(runs_dir), "permission denied")
    assert "PermissionError" not in line and list(runs_dir.iterdir()) == []


# --- 3. a run folder that resume cannot write --------------------------------------------------------


def test_resume_when_the_lock_cannot_be_opened(run_dir) -> None:
    (run_dir / ".lock").unlink(missing_ok=True)
    (run_dir / ".lock").mkdir()  # open() of a folder fails, for root too
    before = (run_dir / "events.jsonl").read_bytes()
    result = invoke("resume", str(run_dir), "-i", "3")
    one_sentence(result, "Cannot write to the run folder", ".lock", "is a directory")
    assert (run_dir / "events.jsonl").read_bytes() == before


def test_resume_of_a_read_only_run_folder(run_dir, monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(run_dir / ".write-check.x.tmp"))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    before = (run_dir / "events.jsonl").read_bytes()
    result = invoke("resume", str(run_dir), "-i", "3")
    line = one_sentence(result, "Cannot write to the run folder", str(run_dir), "permission denied")
    assert ".tmp" not in line
    assert (run_dir / "events.jsonl").read_bytes() == before


# --- 4. an event log that cannot be read ------------------------------------------------------------


def test_events_file_that_is_a_folder(run_dir) -> None:
    log = run_dir / "events.jsonl"
    log.unlink()
    log.mkdir()
    for command in (("show", str(run_dir)), ("report", str(run_dir)), ("resume", str(run_dir), "-i", "3")):
        line = one_sentence(invoke(*command), "events.jsonl cannot be read", "is a directory")
        assert "IsADirectoryError" not in line and "Errno" not in line


def test_events_file_that_cannot_be_read(run_dir, monkeypatch) -> None:
    real = Path.read_bytes

    def refuse(self):
        if self.name == "events.jsonl":
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", refuse)
    for command in (("show", str(run_dir)), ("report", str(run_dir)), ("resume", str(run_dir), "-i", "3")):
        line = one_sentence(invoke(*command), "events.jsonl cannot be read", "permission denied")
        assert "PermissionError" not in line and "Errno" not in line


# --- 5. images/ ------------------------------------------------------------------------------------


def test_show_creates_nothing_and_resume_refuses_images_that_is_a_file(run_dir) -> None:
    shutil.rmtree(run_dir / "images")
    assert invoke("show", str(run_dir)).exit_code == 0
    assert invoke("report", str(run_dir)).exit_code == 0
    assert not (run_dir / "images").exists()  # reading commands leave the folder as they found it
    (run_dir / "images").write_text("oops")
    assert invoke("show", str(run_dir)).exit_code == 0
    one_sentence(invoke("resume", str(run_dir), "-i", "3"), "images is a file, not a folder")
    assert (run_dir / "images").read_text() == "oops"


# --- 6./7. non-UTF-8 files and a list that goes on past a bad folder --------------------------------


def test_non_utf8_run_file_is_one_sentence_and_list_goes_on(run_dir) -> None:
    good = run_dir.parent / "good"
    shutil.copytree(run_dir, good)
    (run_dir / "run.yaml").write_bytes(b"settings:\n  prompt: caf\xe9\xff\n")
    one_sentence(invoke("show", str(run_dir)), "run.yaml cannot be read", "not UTF-8")
    listed = invoke("list", str(run_dir.parent), "--json")
    assert listed.exit_code == 0, listed.output
    status = {r["name"]: (r["status"], r["problem"]) for r in json.loads(listed.stdout)}
    assert status[good.name] == ("done", None)
    assert status[run_dir.name][0] == "unreadable" and "not UTF-8" in status[run_dir.name][1]
    table = invoke("list", str(run_dir.parent))
    assert table.exit_code == 0 and "unreadable" in table.stdout


def test_list_shows_a_folder_it_may_not_enter_as_unreadable(run_dir, monkeypatch) -> None:
    good = run_dir.parent / "good"
    shutil.copytree(run_dir, good)
    real = Path.is_file

    def refuse(self):
        if self.parent == run_dir:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "is_file", refuse)
    listed = invoke("list", str(run_dir.parent), "--json")
    assert listed.exit_code == 0, listed.output
    status = {r["name"]: (r["status"], r["problem"]) for r in json.loads(listed.stdout)}
    assert status == {good.name: ("done", None), run_dir.name: ("unreadable", "permission denied")}


def test_non_utf8_template_is_refused_before_a_run_folder_is_made(tmp_path) -> None:
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    (prompts / "critique.txt").write_bytes(b"[user]\nCritique \xff ${what}\n")
    result = invoke("run", "-p", "a fox", "--provider", "sim", "--runs-dir", str(tmp_path / "runs"),
                    env={"BEAMSEARCH_PROMPTS_DIR": str(prompts)})
    one_sentence(result, str(prompts / "critique.txt"), "not UTF-8")
    assert not (tmp_path / "runs").exists()


# --- 8. run.yaml of the wrong shape -----------------------------------------------------------------


@pytest.mark.parametrize("settings", ["hello", ["a", "list"], {"prompt": "x", "text": "oops"}])
def test_run_file_whose_settings_are_not_a_mapping(run_dir, settings) -> None:
    document = yaml.safe_load((run_dir / "run.yaml").read_text())
    document["settings"] = settings
    (run_dir / "run.yaml").write_text(yaml.safe_dump(document))
    for command in (("show", str(run_dir)), ("report", str(run_dir)), ("resume", str(run_dir), "-i", "3")):
        one_sentence(invoke(*command), "run.yaml is not a beamsearch run file", "not a mapping")
    listed = json.loads(invoke("list", str(run_dir.parent), "--json").stdout)
    assert [r["status"] for r in listed] == ["unreadable"]


# --- 9. events that are JSON but not events -------------------------------------------------------


@pytest.mark.parametrize("event", [
    {"type": "step"},
    {"type": "step", "key": "i0/c00/x", "service": "text", "result": "not a mapping"},
    {"type": "step_failed", "key": "i0/c00/x"},
    {"type": "candidate"},
    {"type": "candidate", "id": "i9c00", "iteration": 9, "total": 50.0, "what": "", "how": "", "prompt": ""},
    {"type": "ranking"},
    {"type": "ranking", "iteration": "x", "pool": [], "survivors": []},
    {"type": "ranking", "iteration": 9, "pool": [["i9c00"]], "survivors": []},
    {"type": "lane_failed", "iteration": 1},
    {"no": "type"},
])
def test_events_missing_what_their_readers_need_are_named_by_line(run_dir, event) -> None:
    lines = log_lines(run_dir)
    lines.insert(3, json.dumps(event))
    (run_dir / "events.jsonl").write_text("".join(line + "\n" for line in lines))
    for command in (("show", str(run_dir)), ("report", str(run_dir)), ("resume", str(run_dir), "-i", "3")):
        one_sentence(invoke(*command), "events.jsonl line 4 is not a valid event")
    listed = json.loads(invoke("list", str(run_dir.parent), "--json").stdout)
    assert [r["status"] for r in listed] == ["unreadable"]


def test_a_json_array_in_the_middle_is_corrupt_for_show_and_resume_alike(run_dir) -> None:
    lines = log_lines(run_dir)
    lines.insert(2, "[1, 2]")
    (run_dir / "events.jsonl").write_text("".join(line + "\n" for line in lines))
    for command in (("show", str(run_dir)), ("resume", str(run_dir), "-i", "3")):
        one_sentence(invoke(*command), "corrupt at line 3")


def test_a_torn_last_line_is_still_only_skipped(run_dir) -> None:
    with open(run_dir / "events.jsonl", "a") as handle:
        handle.write('{"type": "step", "key": "i9')
    assert invoke("show", str(run_dir)).exit_code == 0
    resumed = invoke("resume", str(run_dir), "-i", "3", "--quiet")
    assert resumed.exit_code == 0, resumed.output
    assert "cut off" in resumed.stderr
    assert all(isinstance(json.loads(line), dict) for line in log_lines(run_dir))


# --- 10. templates with a stray $ -------------------------------------------------------------------


def test_a_stray_dollar_in_a_template_is_refused_before_a_run_folder_is_made(tmp_path) -> None:
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    (prompts / "refine.txt").write_text("[system]\nYou refine.\n[user]\nIdea costs $ 5: ${idea}\n")
    result = invoke("run", "-p", "a fox", "--provider", "sim", "--runs-dir", str(tmp_path / "runs"),
                    env={"BEAMSEARCH_PROMPTS_DIR": str(prompts)})
    one_sentence(result, str(prompts / "refine.txt"), "'$'", "Idea costs $ 5")
    assert not (tmp_path / "runs").exists()
    (prompts / "refine.txt").write_text("[user]\nIdea costs $$5: ${idea}\n")
    assert Templates(prompts).render("refine", {"idea": "a fox"})[1] == "Idea costs $5: a fox"
    with pytest.raises(SettingsError, match="starts no placeholder"):
        (prompts / "combine.txt").write_text("[user]\n${what} $\n")
        Templates(prompts)


# --- 11. paths the system refuses --------------------------------------------------------------------


def test_a_path_too_long_is_one_sentence(tmp_path) -> None:
    long = tmp_path / ("x" * 5000)
    for command in (("show", str(long)), ("list", str(long)), ("report", str(long)), ("resume", str(long))):
        line = one_sentence(invoke(*command), "file name too long")
        assert len(line) < 400  # the path is shortened in the message


# --- 12. the safety net ------------------------------------------------------------------------------


def test_an_unexpected_exception_is_one_line_and_debug_shows_the_traceback(run_dir, monkeypatch) -> None:
    def bug(path):
        raise ValueError("boom\nsecond line")

    monkeypatch.setattr(runs_module, "show_data", bug)
    result = invoke("show", str(run_dir))
    line = one_sentence(result, code=1)
    assert line == "Error: internal error: ValueError: boom second line (run with --debug for the traceback)"
    debug = invoke("--debug", "show", str(run_dir))
    assert debug.exit_code == 1 and "Traceback" in debug.stderr and "internal error: ValueError: boom" in debug.stderr


def test_the_safety_net_lets_ctrl_c_through() -> None:
    from beamsearch.cli import guarded

    @guarded
    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted()


# --- 13. advice that resume can follow, and report into a read-only folder ----------------------------


def recorded_as(run_dir: Path, key: str, value) -> None:
    """A run made with `key: value`: run.yaml and what the log's run_started recorded agree on it (an
    edit of run.yaml alone is refused, see test_security_endpoints)."""
    document = yaml.safe_load((run_dir / "run.yaml").read_text())
    document["settings"][key] = value
    (run_dir / "run.yaml").write_text(yaml.safe_dump(document))
    events = [json.loads(line) for line in log_lines(run_dir)]
    for event in events:
        if event["type"] == "run_started":
            event["shaping"][key] = value
    (run_dir / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))


def test_resume_of_a_run_saved_without_a_prompt_does_not_advise_a_flag_it_lacks(run_dir) -> None:
    recorded_as(run_dir, "prompt", None)
    line = one_sentence(invoke("resume", str(run_dir), "-i", "3"), "without a prompt", "beamsearch run --prompt")
    assert "pass --prompt" not in line


def test_resume_without_the_api_key_does_not_advise_the_simulator(run_dir) -> None:
    recorded_as(run_dir, "provider", "openai")
    line = one_sentence(invoke("resume", str(run_dir), "-i", "3", env={"OPENAI_API_KEY": None}), "OPENAI_API_KEY")
    assert "--provider sim" not in line and "resume again" in line


def test_report_into_a_read_only_folder_names_the_report_not_a_temp_file(run_dir, monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(run_dir / ".report.html.abc.tmp"))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    line = one_sentence(invoke("report", str(run_dir)), f"Cannot write {run_dir / 'report.html'}", "permission denied")
    assert ".tmp" not in line and "PermissionError" not in line
