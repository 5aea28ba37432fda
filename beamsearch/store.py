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
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
        base = Path(runs_dir) / f"{stamp}-{slug(prompt)}"
        path, counter = base, 1
        while True:
            try:
                path.mkdir(parents=True)
                break
            except FileExistsError:
                counter += 1
                path = base.with_name(f"{base.name}-{counter}")
        store = cls(path)
        store.images_dir.mkdir()
        (path / EVENTS_FILE).touch()
        document = {"format": LOG_FORMAT, "version": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "settings": settings}
        atomic_write(path / RUN_FILE, yaml.safe_dump(document, sort_keys=False, allow_unicode=True).encode())
        return store

    @classmethod
    def open(cls, path: Path) -> RunStore:
        path = Path(path)
        if not path.is_dir():
            raise RunFolderError(f"{path} is not a folder; give the path of a run folder (see `beamsearch list`).")
        if not (path / RUN_FILE).is_file() or not (path / EVENTS_FILE).exists():
            raise RunFolderError(f"{path} is not a beamsearch run: it has no {RUN_FILE} and {EVENTS_FILE}.")
        store = cls(path)
        store.images_dir.mkdir(exist_ok=True)
        return store

    def read_run_file(self) -> dict[str, Any]:
        try:
            document = yaml.safe_load((self.path / RUN_FILE).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise RunFolderError(f"{self.path / RUN_FILE} cannot be read: {exc}.") from None
        if not isinstance(document, dict) or "settings" not in document:
            raise RunFolderError(f"{self.path / RUN_FILE} is not a beamsearch run file.")
        if document.get("format") != LOG_FORMAT:
            raise RunFolderError(
                f"This run was written in log format {document.get('format')!r} by beamsearch "
                f"{document.get('version', '?')}; this beamsearch ({__version__}) reads format {LOG_FORMAT} only."
            )
        return document

    # --- the event log ----------------------------------------------------------------------------

    def read_events(self) -> list[dict[str, Any]]:
        """Every complete event; a torn or corrupt last line is skipped with a warning."""
        log = self.path / EVENTS_FILE
        if not log.exists():
            return []
        events: list[dict[str, Any]] = []
        lines = log.read_bytes().split(b"\n")
        for number, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            try:
                event = json.loads(raw)
                if not isinstance(event, dict):
                    raise ValueError("not an object")
            except ValueError:
                is_last = all(not rest.strip() for rest in lines[number:])
                if is_last:
                    self.warnings.append(f"The last line of {EVENTS_FILE} was cut off (line {number}); it is ignored and its step will be redone.")
                    self._truncate_torn_tail(len(b"\n".join(lines[: number - 1])))
                    break
                raise RunFolderError(f"{log} is corrupt at line {number}; it cannot be replayed.") from None
            events.append(event)
        return events

    def _truncate_torn_tail(self, keep: int) -> None:
        """Cut a torn last line off, so that the next event starts on a line of its own."""
        with open(self.path / EVENTS_FILE, "r+b") as handle:
            handle.truncate(keep + 1 if keep else 0)
            if keep:
                handle.seek(keep)
                handle.write(b"\n")

    def append(self, event: dict[str, Any]) -> None:
        if self._log is None:
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

    def lock(self) -> None:
        """Make sure no other process writes this run; a second writer gets a clear message."""
        import fcntl

        handle = open(self.path / LOCK_FILE, "a+", encoding="utf-8")  # noqa: SIM115 - held for the run
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

    def unlock(self) -> None:
        if self._lock_handle is not None:
            self._lock_handle.close()
            self._lock_handle = None
