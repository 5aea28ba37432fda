"""Text from models and run folders is inert in a terminal (issue 14, finding 6): escape sequences,
OSC title changes and links, screen clears, C1 controls, overwriting carriage returns and bidi overrides
reach no command's output as themselves, and rich markup in them is text (`[/nope]` crashes nothing)."""

from __future__ import annotations

import asyncio
import io
import json
import re
import shutil
from pathlib import Path

import pytest
from rich.console import Console
from simhelp import sim_settings
from typer.testing import CliRunner

from beamsearch.app import start_run
from beamsearch.cli import app
from beamsearch.display import JsonDisplay, LiveDisplay, PlainDisplay, result_table
from beamsearch.events import from_data
from beamsearch.terminal import json_safe, line, safe

HOSTILE = ("\x1b]0;pwned\x07\x1b[2J\x1b[H\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\"
           "\x9b31m\x9d0;c1\x9c\rOVERWRITE\u202eevil\x07\x08 [bold]bold[/bold] [/nope] [link=x]l[/link]")
# what must never reach a terminal: C0 but tab and newline, DEL, C1, bidi controls
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
ZERO = {"BEAMSEARCH_SIM__LATENCY__TEXT__MEAN": "0", "BEAMSEARCH_SIM__LATENCY__IMAGE__MEAN": "0",
        "BEAMSEARCH_SIM__LATENCY__VISION__MEAN": "0"}


def invoke(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(app, list(args), env={**ZERO, **(env or {})})


def inert(result) -> str:
    """The command's whole output, checked: no control character, no traceback, no markup crash."""
    output = result.stdout + result.stderr
    assert not CONTROL.findall(output), sorted(set(CONTROL.findall(output)))
    assert "Traceback" not in output and "MarkupError" not in output, output
    return output


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory) -> Path:
    """A finished run whose prompt, WHAT, HOW, image path, judge notes and lane error are hostile."""
    base = tmp_path_factory.mktemp("hostile")
    result = asyncio.run(start_run(sim_settings(base, n=3, m=1, iterations=2, prompt="a red boat " + HOSTILE)))
    run_dir = result.store.path
    lines = []
    for raw in (run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines():
        event = json.loads(raw)
        if event["type"] == "candidate":
            event.update(what="WHAT " + HOSTILE, how="HOW " + HOSTILE, alignment_notes=HOSTILE)
            if event["id"] == result.summary["best"]["id"]:
                (run_dir / "images" / "[").mkdir(exist_ok=True)  # logged again when judged again
                shutil.copy(run_dir / event["image"], run_dir / "images" / "[" / "nope]x.png")
                event["image"] = "images/[/nope]x.png"
        lines.append(json.dumps(event, ensure_ascii=False))
    lines.append(json.dumps({"type": "lane_failed", "id": "i1c09", "iteration": 1, "error": "boom " + HOSTILE}))
    (run_dir / "events.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return run_dir


def test_safe_shows_every_control_character_as_an_escape() -> None:
    shown = safe(HOSTILE)
    assert not CONTROL.findall(shown)
    assert "\\x1b]0;pwned\\x07" in shown and "\\x9b31m" in shown and "\\u202e" in shown and "\\x0dOVERWRITE" in shown
    assert safe("two\r\nlines\tand a tab") == "two\nlines\tand a tab"  # layout is kept
    assert line("forged\nError: line") == "forged\\nError: line"
    dumped = json_safe(json.dumps({"x": HOSTILE}, ensure_ascii=False))
    assert json.loads(dumped) == {"x": HOSTILE} and not CONTROL.findall(dumped)


def test_show_of_a_hostile_folder_is_inert_and_does_not_crash(hostile_run) -> None:
    result = invoke("show", str(hostile_run), env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    output = inert(result)
    assert "[/nope]x.png" in output and "[bold]bold[/bold]" in output and "\\x1b]0;pwned" in output
    as_json = invoke("show", str(hostile_run), "--json")
    assert as_json.exit_code == 0
    inert(as_json)
    assert HOSTILE in json.loads(as_json.stdout)["best"]["what"]  # the data itself is unchanged


def test_list_report_and_errors_quoting_the_folder_are_inert(hostile_run, tmp_path) -> None:
    listed = invoke("list", str(hostile_run.parent))
    assert listed.exit_code == 0 and "a red boat" in inert(listed)
    inert(invoke("list", str(hostile_run.parent), "--json"))
    assert invoke("report", str(hostile_run)).exit_code == 0
    named = tmp_path / ("bad\x1b[2J\x9b" + "name")
    named.mkdir()
    refused = invoke("show", str(named))
    assert refused.exit_code == 2 and "\\x1b[2J" in inert(refused)
    lock_owner = shutil.copytree(hostile_run, tmp_path / "locked")
    from beamsearch.store import RunStore

    holder = RunStore(lock_owner)
    holder.lock()
    (lock_owner / ".lock").write_text("process \x1b]0;owned\x07 1")  # the message quotes the lock's text
    try:
        busy = invoke("resume", str(lock_owner))
    finally:
        holder.unlock()
    assert busy.exit_code == 2 and "in use by process \\x1b]0;owned\\x07" in inert(busy)


def test_json_lines_carry_the_text_escaped_but_unchanged() -> None:
    stream = io.StringIO()
    event = from_data({"type": "lane_failed", "id": "i0c01", "iteration": 0, "error": HOSTILE})
    JsonDisplay(stream)(event)
    written = stream.getvalue()
    assert not CONTROL.findall(written) and written.count("\n") == 1
    assert json.loads(written)["error"] == HOSTILE


def test_estimate_with_a_hostile_model_name_is_inert() -> None:
    result = invoke("estimate", "--provider", "openai", env={"BEAMSEARCH_TEXT__MODEL": "m" + HOSTILE})
    assert result.exit_code == 0, result.output
    assert "No price is known for" in inert(result) and "\\x1b]0;pwned" in result.stdout


def test_live_view_plain_lines_and_result_table_take_foreign_text_literally() -> None:
    console = Console(file=io.StringIO(), width=200, force_terminal=True, color_system=None)
    live = LiveDisplay(console, 2, "sim " + HOSTILE, iterations=2)
    for data in ({"type": "iteration_started", "iteration": 0, "dimension": "expand", "lanes": 2},
                 {"type": "stage", "id": "i0c00", "iteration": 0, "stage": "combine", "what": HOSTILE, "how": HOSTILE},
                 {"type": "stage", "id": "i0c01", "iteration": 0, "stage": "failed", "error": HOSTILE},
                 {"type": "attempt_failed", "key": "i0/c00/image", "service": "image", "attempt": 1, "error": HOSTILE},
                 {"type": "attempt_failed", "key": "run/checklist", "service": "text", "attempt": 1, "error": HOSTILE}):
        live(from_data(data))
    console.print(live.render())
    shown = console.file.getvalue()
    assert "[/nope]" in shown and "\\x1b]0;pwned" in shown
    assert not CONTROL.findall(re.sub(r"\x1b\[[0-9;]*m", "", shown))  # only rich's own styling codes remain
    stream = io.StringIO()
    plain = PlainDisplay(stream)
    for data in ({"type": "lane_failed", "id": "i0c01", "iteration": 0, "error": HOSTILE + "\nError: forged"},
                 {"type": "attempt_failed", "key": "k" + HOSTILE, "service": "text", "attempt": 1, "error": HOSTILE}):
        plain(from_data(data))
    assert not CONTROL.findall(stream.getvalue()) and len(stream.getvalue().splitlines()) == 2
    table = Console(file=io.StringIO(), width=200, color_system=None)
    table.print(result_table({"best": {"id": "[/nope]", "total": 1.0, "alignment": 1, "aesthetic": 1.0, "what": HOSTILE,
                                       "how": HOSTILE, "prompt": HOSTILE, "image": "images/[/nope].png"},
                              "lineage": ["[/nope]"], "usage": {}, "status": "done", "reason": HOSTILE}, "/runs/[/x]"))
    assert "images/[/nope].png" in table.file.getvalue() and not CONTROL.findall(table.file.getvalue())
