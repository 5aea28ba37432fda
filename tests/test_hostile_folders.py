"""Issue 14: hostile run folders against `resume`, `show`, `list` and `report`.

Each folder starts as a real run the user made against their own endpoint (host A, the loopback fake
server) and is then edited the way a folder someone sent could be: paths that climb out or are absolute,
symlinks out of it (an image, the log, the lock), a run.yaml naming another host (B) and another key
variable, escape sequences in the prompt and the model's texts, and broken pictures. Whatever a command
makes of it: nothing outside the folder is read (an audit hook watches every open) or written, no request
goes to a host the user did not configure, no traceback, at most one `Error:` sentence."""

from __future__ import annotations

import asyncio
import html
import io
import json
import os
import re
import shutil
import sys
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))

from fake_openai_server import FakeConfig, FakeOpenAI  # noqa: E402

from beamsearch.app import start_run  # noqa: E402
from beamsearch.cli import app  # noqa: E402
from beamsearch.precedence import resolve  # noqa: E402

KEY_ENV = "FAKE_HOSTILE_TEST_KEY"
KEY = "sk-test-hostile-Rt5Yu6Io7Pa8Sd9Fg0Hj"
SECRET_ENV = "SSH_AUTH_SECRET"
SECRET = "ssh-secret-Mn1Bv2Cx3Zl4Kj5Hg6Fd7Sa8"
ESCAPES = "\x1b]0;pwned\x07\x1b[2J\x1b[31mred\x1b[0m\x1b]8;;http://evil.example\x1b\\link\x1b]8;;\x1b\\\x9b6n[/nope][bold]"
CONTROL = [chr(c) for c in (*range(0x00, 0x09), *range(0x0b, 0x20), *range(0x7f, 0xa0))]

OPENED: list[str] = []
WATCHED: list[str] = []  # the folder whose opens are recorded while a command runs


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "open" and WATCHED and args and isinstance(args[0], str | bytes):
        path = os.path.realpath(os.fsdecode(args[0]))  # where it really leads, through any symlink
        if path.startswith(WATCHED[0]):
            OPENED.append(path)


sys.addaudithook(_audit)


@pytest.fixture(scope="module")
def hosts():
    with FakeOpenAI(FakeConfig(api_key=KEY)) as a, FakeOpenAI(FakeConfig()) as b:
        yield a, b


@pytest.fixture(scope="module")
def made(hosts, tmp_path_factory) -> Path:
    """The run the user made against host A (one iteration, two lanes)."""
    a, _ = hosts
    base = tmp_path_factory.mktemp("made")
    flags: dict[str, Any] = {"prompt": "a red kite over a green hill", "n": 2, "m": 1, "iterations": 1,
                             "provider": "openai", "runs_dir": str(base / "runs"), "image.size": "64x64"}
    for role in ("text", "image", "vision"):
        flags[f"{role}.base_url"], flags[f"{role}.api_key_env"] = a.url, KEY_ENV
    os.environ[KEY_ENV] = KEY
    try:
        result = asyncio.run(start_run(resolve(None, flags, environ={})))
    finally:
        del os.environ[KEY_ENV]
    assert result.status == "done", result.error
    return result.store.path


# --- the edits -----------------------------------------------------------------------------------------


def _events(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines() if line.strip()]


def _write_events(run: Path, events: list[dict[str, Any]]) -> None:
    (run / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))


def climb_out(run: Path, outside: Path, other: FakeOpenAI) -> None:
    events = _events(run)
    for e in events:
        if e["type"] == "step" and e["key"] == "i0/c00/image":
            e["result"]["path"] = os.path.relpath(outside / "victim.png", run)
    _write_events(run, events)


def absolute_best(run: Path, outside: Path, other: FakeOpenAI) -> None:
    events = _events(run)
    for e in events:
        if e["type"] == "candidate":
            e["image"] = str(outside / "victim.png")
    _write_events(run, events)
    (run / "best.png").unlink()


def image_symlink(run: Path, outside: Path, other: FakeOpenAI) -> None:
    image = run / "images" / "i0c00.png"
    image.unlink()
    image.symlink_to(outside / "victim.png")


def log_symlink(run: Path, outside: Path, other: FakeOpenAI) -> None:
    shutil.copyfile(run / "events.jsonl", outside / "events.jsonl")
    (run / "events.jsonl").unlink()
    (run / "events.jsonl").symlink_to(outside / "events.jsonl")


def lock_symlink(run: Path, outside: Path, other: FakeOpenAI) -> None:
    (run / ".lock").unlink(missing_ok=True)
    (run / ".lock").symlink_to(outside / "precious.txt")


def other_endpoint(run: Path, outside: Path, other: FakeOpenAI) -> None:
    document = yaml.safe_load((run / "run.yaml").read_text())
    for role in ("text", "image", "vision"):
        document["settings"][role]["base_url"] = other.url
        document["settings"][role]["api_key_env"] = SECRET_ENV
    (run / "run.yaml").write_text(yaml.safe_dump(document))


def escapes(run: Path, outside: Path, other: FakeOpenAI) -> None:
    """Escape sequences and rich markup in the prompt (run.yaml and the log agree) and every model text."""
    document = yaml.safe_load((run / "run.yaml").read_text())
    document["settings"]["prompt"] = f"a kite {ESCAPES}"
    (run / "run.yaml").write_text(yaml.safe_dump(document, allow_unicode=True))
    events = _events(run)
    for e in events:
        if e["type"] == "run_started" and e.get("shaping"):
            e["shaping"]["prompt"] = document["settings"]["prompt"]
        if e["type"] == "step" and "text" in e["result"]:
            e["result"]["text"] += ESCAPES
        if e["type"] == "candidate":
            for name in ("what", "how", "prompt", "alignment_notes", "aesthetic_notes"):
                e[name] = f"{e[name]} {ESCAPES}"
            e["missing"] = [ESCAPES]
    _write_events(run, events)


def bad_pictures(run: Path, outside: Path, other: FakeOpenAI) -> None:
    first, second = run / "images" / "i0c00.png", run / "images" / "i0c01.png"
    data = first.read_bytes()
    first.write_bytes(data[: len(data) // 2])  # cut short
    buffer = io.BytesIO()
    with Image.open(second) as picture:
        picture.convert("RGB").save(buffer, "JPEG")
    second.write_bytes(buffer.getvalue())  # a JPEG named .png
    (run / "best.png").write_bytes(data + b"trailing bytes after IEND")


EDITS = {edit.__name__: edit for edit in (climb_out, absolute_best, image_symlink, log_symlink, lock_symlink,
                                          other_endpoint, escapes, bad_pictures)}
# what `resume` makes of each (0: resumed, 2: refused in one sentence)
RESUME_EXIT = {"climb_out": 2, "absolute_best": 2, "image_symlink": 2, "log_symlink": 2, "lock_symlink": 2,
               "other_endpoint": 2, "escapes": 0, "bad_pictures": 0}


@pytest.fixture
def hostile(edit, made, hosts, tmp_path) -> tuple[Path, Path, Path]:
    """(run folder, outside folder, the user's config) for the edit named `edit`."""
    a, b = hosts
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copyfile(next((made / "images").glob("*.png")), outside / "victim.png")
    (outside / "precious.txt").write_text("do not touch\n")
    run = tmp_path / "runs" / made.name
    shutil.copytree(made, run)
    (run / ".lock").unlink(missing_ok=True)
    EDITS[edit](run, outside, b)
    config = tmp_path / "mine.yaml"
    config.write_text("".join(f"{role}: {{base_url: '{a.url}', api_key_env: {KEY_ENV}}}\n"
                              for role in ("text", "image", "vision")))
    return run, outside, config


COMMANDS = {
    "resume": lambda run, config: ["resume", str(run), "-i", "2", "--quiet", "--config", str(config)],
    "resume without a config": lambda run, config: ["resume", str(run), "-i", "2", "--quiet"],
    "show": lambda run, config: ["show", str(run)],
    "show --json": lambda run, config: ["show", str(run), "--json"],
    "list": lambda run, config: ["list", str(run.parent)],
    "list --json": lambda run, config: ["list", str(run.parent), "--json"],
    "report": lambda run, config: ["report", str(run)],
}


def snapshot(root: Path, skip: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every file under `root` but those inside `skip`: its size, mtime and bytes (links: their target)."""
    found = {}
    for path in root.rglob("*"):
        if path == skip or skip in path.parents:
            continue
        if path.is_symlink():
            found[str(path)] = (0, 0, os.readlink(path).encode())
        elif path.is_file():
            stat = path.stat()
            found[str(path)] = (stat.st_size, stat.st_mtime_ns, path.read_bytes())
    return found


def invoke(args: list[str], outside: Path):
    WATCHED[:] = [str(outside)]
    OPENED.clear()
    try:
        return CliRunner().invoke(app, args, env={KEY_ENV: KEY, SECRET_ENV: SECRET})
    finally:
        WATCHED.clear()


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("edit", list(EDITS))
def test_a_hostile_folder_reads_writes_and_calls_nothing_it_should_not(edit, hostile, hosts, command, tmp_path) -> None:
    run, outside, config = hostile
    a, b = hosts
    before = snapshot(tmp_path, run)
    requests_a, requests_b = a.total_requests(), b.total_requests()
    gets_b, headers_a, headers_b = len(b.gets), len(a.authorizations), len(b.authorizations)
    result = invoke(COMMANDS[command](run, config), outside)
    assert "Traceback" not in result.output and "internal error" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert len([line for line in result.stderr.splitlines() if line.startswith("Error:")]) <= 1, result.stderr
    assert OPENED == [], OPENED  # nothing outside the folder was opened, for reading or writing
    assert snapshot(tmp_path, run) == before  # nor changed
    # no request to a host the user did not configure, and no key but the user's
    assert b.total_requests() == requests_b and len(b.gets) == gets_b
    assert not any(SECRET in header for header in a.authorizations[headers_a:] + b.authorizations[headers_b:])
    if command == "resume without a config":  # the user's endpoint is then the OpenAI API, not the folder's
        assert result.exit_code == 2 and a.total_requests() == requests_a, result.output
    elif command == "resume":
        assert result.exit_code == RESUME_EXIT[edit], result.output
        if result.exit_code == 0:
            assert json.loads((run / "summary.json").read_text())["status"] == "done"
            assert a.total_requests() > requests_a  # redone against the user's own host
    else:
        assert a.total_requests() == requests_a  # reading a folder calls nothing
    if command == "report" and result.exit_code == 0:  # and its pictures link only to files inside the folder
        page = (run / "report.html").read_text()
        for src in re.findall(r'<img src="([^"]+)"', page):
            assert (run / urllib.parse.unquote(html.unescape(src))).resolve().is_relative_to(run.resolve()), src


def test_the_open_watch_sees_a_read_outside(tmp_path) -> None:
    """The audit hook above is what proves 'nothing read': it must see an open when there is one."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "c.yaml").write_text("n: 3\n")
    result = invoke(["config", "--config", str(outside / "c.yaml")], outside)
    assert result.exit_code == 0 and OPENED == [os.path.realpath(outside / "c.yaml")]


# Text from a folder reaches stdout inert, whatever the damage and the command (terminal.py escapes it).


@pytest.mark.parametrize(("edit", "command"), [(edit, command) for edit in EDITS for command in COMMANDS])
def test_no_control_character_reaches_stdout(edit, hostile, command) -> None:
    run, outside, config = hostile
    result = invoke(COMMANDS[command](run, config), outside)
    found = sorted({repr(c) for c in result.stdout if c in CONTROL})
    assert not found, (found, result.stdout[:400])
