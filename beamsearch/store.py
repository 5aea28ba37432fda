"""The run folder: `run.yaml`, the append-only `events.jsonl`, images, derived files, and a lock.

`events.jsonl` is the source of truth. Each line is flushed the moment its step finishes, and an image
is written (temp file + rename) before the event that names it, so a crash at any instant leaves a log
whose every event can be trusted. The run's own writer cuts a torn last line off; readers of someone
else's run skip it (`eventlog`). A line that a full disk cut short is cut off again at once, so the log
stays whole and the run resumable.

A run folder may come from someone else: its own files are opened without following a symlink out of it
(`files.confined`, O_NOFOLLOW), and everything written is a temp file renamed into place, so a planted
symlink is replaced, never written through.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import IO, Any

import yaml

from beamsearch import __version__
from beamsearch.errors import DiskFull, RunFolderError
from beamsearch.eventlog import EVENTS_FILE, parse_log, read_log_bytes
from beamsearch.events import Event, NotJson, parse_line
from beamsearch.files import atomic_write, confined, is_disk_full, reason, shown, slug, write_all
from beamsearch.roles import ROLES

LOG_FORMAT = 1
RUN_FILE = "run.yaml"
LOCK_FILE = ".lock"
__all__ = ["EVENTS_FILE", "LOCK_FILE", "RUN_FILE", "RunStore", "atomic_write", "load_run_document", "slug"]


# --- the shape of run.yaml ------------------------------------------------------------------------

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
    where = confined(Path(path), RUN_FILE)
    try:
        document = yaml.safe_load(where.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        raise RunFolderError(f"{shown(where)} cannot be read: {reason(exc)}.") from None
    except yaml.YAMLError as exc:
        problem = " ".join(str(exc).split())
        raise RunFolderError(f"{shown(where)} is not valid YAML: {problem}.") from None
    return check_run_document(document, where)


class RunStore:
    """One run folder. Create it with `create`, open an existing one with `open`."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.images_dir = self.path / "images"
        self._log: int | None = None  # the log's file descriptor while this process appends to it
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
        except (OSError, DiskFull) as exc:
            if made:  # a half-made folder would look like a broken run
                shutil.rmtree(path, ignore_errors=True)
            if isinstance(exc, DiskFull):
                raise
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

    def update_settings(self, settings: dict[str, Any]) -> None:
        """Keep run.yaml's settings current with what the run now follows (more iterations, a new budget)."""
        document = self.read_run_file()
        document["settings"] = settings
        atomic_write(self.path / RUN_FILE, yaml.safe_dump(document, sort_keys=False, allow_unicode=True).encode())

    # --- the event log ----------------------------------------------------------------------------

    def read_events(self) -> list[Event]:
        """Every complete event, each checked (a bad one is named by its line). This is the writer's
        reader: a torn last line is cut off with a warning, so the next event starts on a line of its own."""
        log = confined(self.path, EVENTS_FILE)
        read = parse_log(read_log_bytes(log), log)
        if read.torn_line is not None and read.torn_offset is not None:
            self.warnings.append(f"The last line of {EVENTS_FILE} was cut off (line {read.torn_line}); "
                                 "it is ignored and its step will be redone.")
            self._truncate(read.torn_offset)
        return read.events

    def _truncate(self, keep: int) -> None:
        """Cut the log to its first `keep` bytes (which end with a newline, or are none)."""
        try:
            fd = os.open(self.path / EVENTS_FILE, os.O_WRONLY | os.O_NOFOLLOW)
            try:
                os.ftruncate(fd, keep)
            finally:
                os.close(fd)
        except OSError as exc:
            raise RunFolderError(f"{shown(self.path / EVENTS_FILE)} cannot be repaired: {reason(exc)}.") from None

    def _end_last_line(self) -> None:
        """Before appending: a last line without its newline (a disk that filled up, an editor) would be
        glued to the next event and make the whole log unreadable. A complete one gets its newline; a
        torn one is cut off, as `read_events` does."""
        log = confined(self.path, EVENTS_FILE)
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
            parse_line(raw[start:])
        except NotJson:
            self.warnings.append(f"The last line of {EVENTS_FILE} was cut off; it is ignored and its step will be redone.")
            self._truncate(start)
            return
        except ValueError:
            pass  # a whole JSON object that is not a valid event: kept, and named when the log is read
        fd = self._open_log()
        try:
            self._write_line(fd, b"")  # the newline the last line lacked
        finally:
            os.close(fd)

    def _open_log(self) -> int:
        """The log opened for appending, never through a symlink."""
        try:
            return self._open_log_raw()
        except OSError as exc:
            raise RunFolderError(f"Cannot write {shown(self.path / EVENTS_FILE)}: {reason(exc)}.") from None

    def _write_line(self, fd: int, line: bytes) -> None:
        """Append `line` and its newline with one write; if the disk refuses part of it, cut the log back to
        where it was, so it never ends in half a line, and say so in one sentence."""
        start = os.fstat(fd).st_size
        try:
            write_all(fd, line + b"\n")
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)
            if is_disk_full(exc):
                raise DiskFull.writing(self.path / EVENTS_FILE, exc) from None
            raise RunFolderError(f"Cannot write {shown(self.path / EVENTS_FILE)}: {reason(exc)}.") from None

    def append(self, event: Event) -> None:
        """Write one event as one line: once this returns, the kernel has it and a crash of the process
        cannot lose it (written with os.write, unbuffered, so nothing waits in a Python buffer)."""
        if self._log is None:
            self._end_last_line()
            self._log = self._open_log()
        self._write_line(self._log, event.to_line().encode("utf-8"))

    def close(self) -> None:
        if self._log is not None:
            with contextlib.suppress(OSError):
                os.fsync(self._log)
            os.close(self._log)
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
        """Copy the folder's own file `relative` (confined: never one outside) to `name`, atomically."""
        source = confined(self.path, relative)
        atomic_write(self.path / name, source.read_bytes())

    # --- the lock ---------------------------------------------------------------------------------

    def lock(self, check_writable: bool = True) -> None:
        """Make sure no other process writes this run; a second writer gets a clear message. Then (unless
        the caller does it later, with `check_writable()`) make sure this one can write it."""
        import fcntl

        confined(self.path, LOCK_FILE)  # a planted .lock symlink is named, never opened
        try:  # never through a symlink: a planted .lock must not make us truncate a file elsewhere
            fd = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
            handle = os.fdopen(fd, "a+", encoding="utf-8")
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
        if not self._is_lock_file(handle):  # its holder removed it as we opened it: take the one there now
            handle.close()
            return self.lock(check_writable)
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
            confined(self.path, "images/probe")  # images/ itself must not lead out of the folder
            os.close(self._open_log_raw())
            fd, probe = tempfile.mkstemp(dir=self.path, prefix=".write-check.", suffix=".tmp")
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            name = exc.filename if isinstance(exc.filename, str) else ""
            inside = "" if not name or ".write-check." in name or Path(name) == self.path else f" ({Path(name).name})"
            raise RunFolderError(f"Cannot write to the run folder {shown(self.path)}{inside}: {reason(exc)}.") from None

    def _is_lock_file(self, handle: IO[str]) -> bool:
        """Whether `handle` is still the file at `.lock` (the one a next writer would open and lock)."""
        try:
            here, held = os.stat(self.path / LOCK_FILE, follow_symlinks=False), os.fstat(handle.fileno())
        except OSError:
            return False
        return (here.st_dev, here.st_ino) == (held.st_dev, held.st_ino)
    def _open_log_raw(self) -> int:
        """Opened for appending, created with the user's umask, never through a symlink (O_NOFOLLOW)."""
        return os.open(self.path / EVENTS_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o666)

    def unlock(self) -> None:
        """Release the run, and remove its `.lock` while still holding it (only if it is ours): a process
        that opened the old file meanwhile sees in `lock` that it is no longer the lock file."""
        if self._lock_handle is not None:
            if self._is_lock_file(self._lock_handle):
                with contextlib.suppress(OSError):
                    os.unlink(self.path / LOCK_FILE)
            self._lock_handle.close()
            self._lock_handle = None
