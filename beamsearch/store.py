"""The run folder: `run.yaml`, the append-only `events.jsonl`, images, derived files, and a lock.

`events.jsonl` is the source of truth. Each line is flushed the moment its step finishes, and an image
is written (temp file + rename) before the event that names it, so a crash at any instant leaves a log
whose every event can be trusted. Reading tolerates a torn last line.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import time
import unicodedata
from pathlib import Path
from typing import IO, Any

import yaml

from beamsearch import __version__
from beamsearch.errors import RunFolderError

LOG_FORMAT = 1
RUN_FILE = "run.yaml"
EVENTS_FILE = "events.jsonl"
LOCK_FILE = ".lock"


def slug(text: str, limit: int = 48) -> str:
    """A folder-safe name: ASCII letters, digits and dashes only, bounded length, never empty."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    cleaned = re.sub(r"[^a-zA-Z0-9]+", "-", ascii_text).strip("-").lower()
    return cleaned[:limit].rstrip("-") or "run"


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the whole new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def shown(path: Path | str, limit: int = 160) -> str:
    """A path fit for a one-sentence message: an absurdly long one is shortened in the middle."""
    text = str(path)
    return text if len(text) <= limit else f"{text[: limit // 2]}...{text[-(limit // 2 - 3):]}"


def reason(exc: BaseException) -> str:
    """What went wrong with a file, in words and without the Python class name."""
    if isinstance(exc, UnicodeDecodeError):
        return "it is not UTF-8 text"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc).rstrip(".") or type(exc).__name__


# --- the shape of run.yaml and of events ------------------------------------------------------------

ROLES = ("text", "image", "vision")


def check_run_document(document: Any, where: Path) -> dict[str, Any]:
    """run.yaml as the readers expect it, or one sentence saying why it is not a run file."""
    if not isinstance(document, dict) or "settings" not in document:
        raise RunFolderError(f"{shown(where)} is not a beamsearch run file (it has no settings).")
    settings = document["settings"]
    if not isinstance(settings, dict):
        raise RunFolderError(f"{shown(where)} is not a beamsearch run file: its settings are not a mapping.")
    for role in ROLES:
        if role in settings and not isinstance(settings[role], dict):
            raise RunFolderError(f"{shown(where)} is not a beamsearch run file: its '{role}' settings are not a mapping.")
    return document


def load_run_document(path: Path) -> dict[str, Any]:
    """Read and check the run.yaml of the run folder `path` (without judging its log format)."""
    where = Path(path) / RUN_FILE
    try:
        document = yaml.safe_load(where.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        raise RunFolderError(f"{shown(where)} cannot be read: {reason(exc)}.") from None
    except yaml.YAMLError as exc:
        problem = " ".join(str(exc).split())
        raise RunFolderError(f"{shown(where)} is not valid YAML: {problem}.") from None
    return check_run_document(document, where)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _text(value: Any) -> bool:
    return isinstance(value, str)


def _text_or_none(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _mapping(value: Any) -> bool:
    return isinstance(value, dict)


def _texts(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _pool(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str) and (entry[1] is None or _number(entry[1]))
        for entry in value)


def _numbers(value: Any) -> bool:
    return isinstance(value, dict) and all(_number(v) for v in value.values())


_KINDS = {_number: "a number", _whole: "a whole number", _text: "text", _text_or_none: "text or null",
          _mapping: "a mapping", _texts: "a list of texts", _pool: "a list of [id, score] pairs",
          _numbers: "a mapping of numbers"}

# What the readers of the log (summary, replay, report, show) rely on, per event type: required fields,
# then fields that may be missing but must have the right type when present. Unknown types pass.
EVENT_FIELDS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "step": ({"key": _text, "service": _text, "result": _mapping},
             {"cost": _number, "attempts": _whole, "meta": _mapping}),
    "step_failed": ({"key": _text, "service": _text, "error": _text}, {}),
    "candidate": ({"id": _text, "iteration": _whole, "index": _whole, "total": _number,
                   "what": _text, "how": _text, "prompt": _text},
                  {"parent": _text_or_none, "status": _text, "image": _text_or_none, "alignment": _number,
                   "aesthetic": _number, "checks": _mapping, "judge_spread": _numbers}),
    "lane_failed": ({"id": _text, "iteration": _whole}, {"parent": _text_or_none, "error": _text_or_none}),
    "ranking": ({"iteration": _whole, "pool": _pool, "survivors": _texts},
                {"failed": _texts, "best": _text, "pairwise": _mapping}),
    "run_finished": ({}, {"status": _text, "reason": _text, "cost_usd": _number}),
}


def event_problem(event: dict[str, Any]) -> str | None:
    """Why `event` cannot be used by the readers of the log, or None when it can."""
    kind = event.get("type")
    if not isinstance(kind, str):
        return "it has no 'type'"
    required, optional = EVENT_FIELDS.get(kind, ({}, {}))
    for name, check in required.items():
        if name not in event:
            return f"a '{kind}' event needs '{name}'"
        if not check(event[name]):
            return f"'{name}' of a '{kind}' event must be {_KINDS[check]}"
    for name, check in optional.items():
        if name in event and not check(event[name]):
            return f"'{name}' of a '{kind}' event must be {_KINDS[check]}"
    if kind == "step":
        usage = event.get("usage")
        if usage is not None and not (isinstance(usage, dict) and all(
                _number(usage[name]) for name in ("input_tokens", "output_tokens", "images") if name in usage)):
            return "'usage' of a 'step' event must be a mapping with numbers of tokens and images"
        if event["key"] == "run/checklist" and not isinstance(event["result"].get("questions"), list):
            return "the checklist step needs a list of 'questions'"
    if kind == "ranking" and "pairwise" in event:
        comparisons = event["pairwise"].get("comparisons", [])
        if not isinstance(comparisons, list) or not all(
                isinstance(c, dict) and ("agree" not in c or ("ab" in c and "ba" in c and isinstance(c.get("pair"), list)
                                                               and len(c["pair"]) == 2))
                for c in comparisons):
            return "the pairwise comparisons of a 'ranking' event are malformed"
    return None


def parse_log(raw: bytes, log: Path, validate: bool = True) -> tuple[list[dict[str, Any]], int | None]:
    """The events of a log's bytes, and the line number of a torn last line (None if there is none).

    A line that is not a JSON object is torn when it is the last one (a crash or a write still going on)
    and corruption anywhere else. With `validate`, an event missing what its readers need is corruption
    too, named by its line, because replaying or summarising it would fail later and less clearly."""
    lines = raw.split(b"\n")
    parsed: list[tuple[int, dict[str, Any]]] = []
    torn: int | None = None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
            if not isinstance(event, dict):
                raise ValueError("not an object")
        except ValueError:  # also UnicodeDecodeError
            if all(not rest.strip() for rest in lines[number:]):
                torn = number
                break
            raise RunFolderError(f"{shown(log)} is corrupt at line {number} (not a JSON object); it cannot be replayed.") from None
        parsed.append((number, event))
    if validate:
        for number, event in parsed:
            problem = event_problem(event)
            if problem is not None:
                raise RunFolderError(f"{shown(log)} line {number} is not a valid event: {problem}.")
    return [event for _, event in parsed], torn


def read_log_bytes(log: Path) -> bytes:
    """The bytes of an event log (empty if there is none yet), or one sentence saying why it cannot be read."""
    try:
        return log.read_bytes()
    except FileNotFoundError:
        return b""
    except OSError as exc:
        raise RunFolderError(f"{shown(log)} cannot be read: {reason(exc)}.") from None


class RunStore:
    """One run folder. Create it with `create`, open an existing one with `open`."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.images_dir = self.path / "images"
        self._log: IO[str] | None = None
        self._lock_handle: IO[str] | None = None
        self.warnings: list[str] = []

    # --- creating and opening ---------------------------------------------------------------------

    @classmethod
    def create(cls, runs_dir: Path, prompt: str, settings: dict[str, Any], now: float | None = None) -> RunStore:
        """Make a new run folder inside `runs_dir` (made if missing); one sentence if the disk refuses."""
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
        base = Path(runs_dir) / f"{stamp}-{slug(prompt)}"
        path, counter, made = base, 1, False
        try:
            while True:
                try:
                    path.mkdir(parents=True)
                    made = True
                    break
                except FileExistsError:
                    if not Path(runs_dir).is_dir():
                        raise NotADirectoryError(20, "Not a directory") from None
                    counter += 1
                    path = base.with_name(f"{base.name}-{counter}")
            store = cls(path)
            store.images_dir.mkdir()
            (path / EVENTS_FILE).touch()
            document = {"format": LOG_FORMAT, "version": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                        "settings": settings}
            atomic_write(path / RUN_FILE, yaml.safe_dump(document, sort_keys=False, allow_unicode=True).encode())
        except OSError as exc:
            if made:  # a half-made folder would look like a broken run
                shutil.rmtree(path, ignore_errors=True)
            raise RunFolderError(f"Cannot make a run folder in {shown(runs_dir)}: {reason(exc)}.") from None
        return store

    @classmethod
    def open(cls, path: Path) -> RunStore:
        """An existing run folder. Opening changes nothing on disk: `show`, `list` and `report` only read,
        and a writer (`resume`) makes what it needs when it takes the lock."""
        path = Path(path)
        try:
            if not path.is_dir():
                raise RunFolderError(f"{shown(path)} is not a folder; give the path of a run folder (see `beamsearch list`).")
            if not (path / RUN_FILE).is_file() or not (path / EVENTS_FILE).exists():
                raise RunFolderError(f"{shown(path)} is not a beamsearch run: it has no {RUN_FILE} and {EVENTS_FILE}.")
        except OSError as exc:
            raise RunFolderError(f"{shown(path)} cannot be opened as a run folder: {reason(exc)}.") from None
        return cls(path)

    def read_run_file(self) -> dict[str, Any]:
        document = load_run_document(self.path)
        if document.get("format") != LOG_FORMAT:
            raise RunFolderError(
                f"This run was written in log format {document.get('format')!r} by beamsearch "
                f"{document.get('version', '?')}; this beamsearch ({__version__}) reads format {LOG_FORMAT} only."
            )
        return document

    # --- the event log ----------------------------------------------------------------------------

    def read_events(self, validate: bool = False) -> list[dict[str, Any]]:
        """Every complete event; a torn last line is cut off with a warning (this reader belongs to the
        writer: `runs.read_events` reads a log that someone else may be writing). With `validate`, an
        event its readers could not use is refused by line number (see `parse_log`)."""
        log = self.path / EVENTS_FILE
        raw = read_log_bytes(log)
        events, torn = parse_log(raw, log, validate)
        if torn is not None:
            self.warnings.append(f"The last line of {EVENTS_FILE} was cut off (line {torn}); it is ignored and its step will be redone.")
            self._truncate_torn_tail(len(b"\n".join(raw.split(b"\n")[: torn - 1])))
        return events

    def _truncate_torn_tail(self, keep: int) -> None:
        """Cut a torn last line off, so that the next event starts on a line of its own."""
        try:
            with open(self.path / EVENTS_FILE, "r+b") as handle:
                handle.truncate(keep + 1 if keep else 0)
                if keep:
                    handle.seek(keep)
                    handle.write(b"\n")
        except OSError as exc:
            raise RunFolderError(f"{shown(self.path / EVENTS_FILE)} cannot be repaired: {reason(exc)}.") from None

    def _end_last_line(self) -> None:
        """Before appending: a last line without its newline (a disk that filled up, an editor) would be
        glued to the next event and make the whole log unreadable. A complete one gets its newline; a
        torn one is cut off, as `read_events` does."""
        log = self.path / EVENTS_FILE
        try:
            with open(log, "rb") as handle:
                if handle.seek(0, os.SEEK_END) == 0:
                    return
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) == b"\n":  # the usual case: one byte read, not the whole log
                    return
        except FileNotFoundError:
            return
        except OSError:
            pass  # read_log_bytes below says what is wrong, in one sentence
        raw = read_log_bytes(log)
        if not raw or raw.endswith(b"\n"):
            return
        start = raw.rfind(b"\n") + 1
        try:
            if not isinstance(json.loads(raw[start:]), dict):
                raise ValueError("not an object")
        except ValueError:
            self.warnings.append(f"The last line of {EVENTS_FILE} was cut off; it is ignored and its step will be redone.")
            self._truncate_torn_tail(start - 1 if start else 0)
            return
        with open(log, "ab") as handle:
            handle.write(b"\n")

    def append(self, event: dict[str, Any]) -> None:
        if self._log is None:
            self._end_last_line()
            self._log = open(self.path / EVENTS_FILE, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the run
        event.setdefault("ts", round(time.time(), 3))
        self._log.write(json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n")
        self._log.flush()

    def close(self) -> None:
        if self._log is not None:
            self._log.flush()
            os.fsync(self._log.fileno())
            self._log.close()
            self._log = None
        self.unlock()

    # --- files ------------------------------------------------------------------------------------

    def image_path(self, name: str, fmt: str) -> Path:
        return self.images_dir / f"{name}.{'jpg' if fmt == 'jpeg' else fmt}"

    def write_image(self, name: str, data: bytes, fmt: str) -> str:
        """Write an image atomically; return its path relative to the run folder."""
        path = self.image_path(name, fmt)
        atomic_write(path, data)
        return path.relative_to(self.path).as_posix()

    def write_json(self, name: str, data: Any) -> None:
        atomic_write(self.path / name, (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode())

    def copy_file(self, relative: str, name: str) -> None:
        source = self.path / relative
        temp = self.path / f".{name}.tmp"
        shutil.copyfile(source, temp)
        os.replace(temp, self.path / name)

    # --- the lock ---------------------------------------------------------------------------------

    def lock(self, check_writable: bool = True) -> None:
        """Make sure no other process writes this run; a second writer gets a clear message. Then (unless
        the caller does it later, with `check_writable()`) make sure this one can write it."""
        import fcntl

        try:
            handle = open(self.path / LOCK_FILE, "a+", encoding="utf-8")  # noqa: SIM115 - held for the run
        except OSError as exc:
            raise RunFolderError(f"Cannot write to the run folder {shown(self.path)}: its {LOCK_FILE} cannot be opened "
                                 f"({reason(exc)}).") from None
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            handle.close()
            raise RunFolderError(f"{self.path} is in use by {owner}; wait for it to finish or stop it first.") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()}")
        handle.flush()
        self._lock_handle = handle
        if check_writable:
            try:
                self.check_writable()
            except BaseException:
                self.unlock()
                raise

    def check_writable(self) -> None:
        """A writer finds out now, not after its first paid call, that it cannot write images or events."""
        try:
            if self.images_dir.exists() and not self.images_dir.is_dir():
                raise RunFolderError(f"{shown(self.images_dir)} is a file, not a folder; move it away to continue this run.")
            self.images_dir.mkdir(exist_ok=True)
            with open(self.path / EVENTS_FILE, "ab"):
                pass
            fd, probe = tempfile.mkstemp(dir=self.path, prefix=".write-check.", suffix=".tmp")
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            name = exc.filename if isinstance(exc.filename, str) else ""
            inside = "" if not name or ".write-check." in name or Path(name) == self.path else f" ({Path(name).name})"
            raise RunFolderError(f"Cannot write to the run folder {shown(self.path)}{inside}: {reason(exc)}.") from None

    def unlock(self) -> None:
        if self._lock_handle is not None:
            self._lock_handle.close()
            self._lock_handle = None
