"""The batch folder: `batch.yaml` (the ideas and the shared settings), the append-only `batch.jsonl`,
the derived `batch_summary.json` and `index.html`, a lock, and one ordinary run folder per idea.

A batch folder is data, not instructions, like a run folder: a run folder named in its log must be a
plain folder directly inside it (no separators, no `..`, no symlink out), and its settings and ideas are
checked again when read back.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import yaml

from beamsearch import __version__
from beamsearch.batch_events import parse_batch_line
from beamsearch.batch_file import IdeaSpec
from beamsearch.errors import RunFolderError, SettingsError
from beamsearch.eventlog import parse_log, read_log_bytes
from beamsearch.events import Event
from beamsearch.files import atomic_write, reason, shown, slug
from beamsearch.store import RunStore

BATCH_FILE = "batch.yaml"
BATCH_LOG = "batch.jsonl"
SUMMARY_FILE = "batch_summary.json"
INDEX_FILE = "index.html"
BATCH_FORMAT = 1


def is_batch(path: Path) -> bool:
    """Whether `path` is a batch folder (it has a batch.yaml); never raises."""
    try:
        return (Path(path) / BATCH_FILE).is_file()
    except OSError:
        return False


@dataclass
class BatchDocument:
    """batch.yaml, read back and checked."""

    source: str
    settings: dict[str, Any]
    ideas: list[IdeaSpec]
    concurrency: int | None = None
    created: str = ""
    version: str = ""

    def to_yaml(self) -> bytes:
        document = {"format": BATCH_FORMAT, "version": self.version or __version__, "created": self.created,
                    "source": self.source, "concurrency_ideas": self.concurrency, "settings": self.settings,
                    "ideas": [idea.to_record() for idea in self.ideas]}
        return yaml.safe_dump(document, sort_keys=False, allow_unicode=True).encode()


def check_document(data: Any, where: Path) -> BatchDocument:
    """batch.yaml as the batch expects it, or one sentence saying why it is not a batch file."""
    if not isinstance(data, dict) or not isinstance(data.get("settings"), dict) or not isinstance(data.get("ideas"), list):
        raise RunFolderError(f"{shown(where)} is not a beamsearch batch file (it needs settings and a list of ideas).")
    if data.get("format") != BATCH_FORMAT:
        raise RunFolderError(f"{shown(where)} was written in batch format {data.get('format')!r}; this beamsearch "
                             f"({__version__}) reads format {BATCH_FORMAT} only.")
    concurrency = data.get("concurrency_ideas")
    if concurrency is not None and (not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1):
        raise RunFolderError(f"{shown(where)} has a concurrency_ideas that is not a whole number of at least 1.")
    try:
        ideas = [IdeaSpec.from_record(number, record, BATCH_FILE)
                 for number, record in enumerate(data["ideas"], start=1)]
    except SettingsError as exc:
        raise RunFolderError(f"{shown(where.parent)}: {exc.message}") from None
    if not ideas:
        raise RunFolderError(f"{shown(where)} holds no ideas.")
    return BatchDocument(str(data.get("source") or ""), data["settings"], ideas, concurrency,
                         str(data.get("created") or ""), str(data.get("version") or ""))


class BatchStore:
    """One batch folder. Make it with `create`, open an existing one with `open`."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._log: IO[str] | None = None
        self._locker = RunStore(self.path)  # the same flock as a run folder's, on the batch's own .lock
        self.warnings: list[str] = []

    @classmethod
    def create(cls, runs_dir: Path, document: BatchDocument, now: float | None = None) -> BatchStore:
        """A new batch folder in `runs_dir`, named like a run (stamp and the ideas file's name)."""
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
        base = Path(runs_dir) / f"{stamp}-{slug(Path(document.source).stem or 'batch')}"
        path, counter = base, 1
        try:
            Path(runs_dir).mkdir(parents=True, exist_ok=True)
            while True:
                try:
                    path.mkdir()
                    break
                except FileExistsError:
                    counter += 1
                    path = base.with_name(f"{base.name}-{counter}")
        except OSError as exc:
            raise RunFolderError(f"Cannot make a batch folder in {shown(runs_dir)}: {reason(exc)}.") from None
        try:
            document.created = document.created or time.strftime("%Y-%m-%dT%H:%M:%S%z")
            atomic_write(path / BATCH_FILE, document.to_yaml())
            (path / BATCH_LOG).touch()
        except OSError as exc:
            shutil.rmtree(path, ignore_errors=True)  # a half-made folder would look like a broken batch
            raise RunFolderError(f"Cannot make a batch folder in {shown(runs_dir)}: {reason(exc)}.") from None
        return cls(path)

    @classmethod
    def open(cls, path: Path) -> BatchStore:
        path = Path(path)
        try:
            if not path.is_dir():
                raise RunFolderError(f"{shown(path)} is not a folder; give the path of a batch folder (see `beamsearch list`).")
            if not (path / BATCH_FILE).is_file():
                raise RunFolderError(f"{shown(path)} is not a beamsearch batch: it has no {BATCH_FILE}.")
        except OSError as exc:
            raise RunFolderError(f"{shown(path)} cannot be opened as a batch folder: {reason(exc)}.") from None
        return cls(path)

    def read_document(self) -> BatchDocument:
        where = self.path / BATCH_FILE
        try:
            data = yaml.safe_load(where.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RunFolderError(f"{shown(where)} cannot be read: {reason(exc)}.") from None
        except yaml.YAMLError:
            raise RunFolderError(f"{shown(where)} is not valid YAML.") from None
        return check_document(data, where)

    # --- the log ------------------------------------------------------------------------------------

    def read_events(self) -> list[Event]:
        """Every complete event; a torn last line (a batch killed mid-write) is skipped, never cut here."""
        return read_batch_log(self.path)[0]

    def append(self, event: Event) -> None:
        """One event, one line, flushed: once this returns, a crash cannot lose it."""
        if self._log is None:
            self._end_last_line()
            self._log = open(self.path / BATCH_LOG, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the batch
        self._log.write(event.to_line() + "\n")
        self._log.flush()

    def _end_last_line(self) -> None:
        """Before the first append: a torn last line is cut off, a whole one gets its newline."""
        log = self.path / BATCH_LOG
        _, torn = read_batch_log(self.path)
        with open(log, "a+b") as handle:
            if torn is not None:
                handle.truncate(torn)
                self.warnings.append(f"The last line of {BATCH_LOG} was cut off; it is ignored.")
                return
            if handle.seek(0, os.SEEK_END) == 0:
                return
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":
                handle.write(b"\n")  # append mode: written at the end whatever the position

    def write_file(self, name: str, data: bytes) -> Path:
        path = self.path / name
        try:
            atomic_write(path, data)
        except OSError as exc:
            raise RunFolderError(f"Cannot write {shown(path)}: {reason(exc)}.") from None
        return path

    # --- run folders and the lock -------------------------------------------------------------------

    def run_path(self, name: str) -> Path:
        """The run folder `name` of the log, refused unless it is a plain folder directly inside the batch."""
        return idea_folder(self.path, name)

    def lock(self) -> None:
        self._locker.lock(check_writable=False)

    def close(self) -> None:
        if self._log is not None:
            self._log.flush()
            os.fsync(self._log.fileno())
            self._log.close()
            self._log = None
        self._locker.unlock()


def idea_folder(batch_dir: Path, name: Any) -> Path:
    """The run folder `name` (as the batch log names it) inside `batch_dir`: refused with one sentence
    unless it is a plain folder name directly inside the batch, not a symlink (the log is data)."""
    plain = (isinstance(name, str) and name not in ("", ".", "..") and not name.startswith(".")
             and "/" not in name and "\\" not in name and "\x00" not in name)
    path = Path(batch_dir) / name if plain else None
    if path is None or path.is_symlink() or path.resolve().parent != Path(batch_dir).resolve():
        raise RunFolderError(f"{shown(Path(batch_dir) / BATCH_LOG)} names a run folder {name!r} that is not a folder "
                             "inside the batch; it is not followed.")
    return path


def read_batch_log(folder: Path) -> tuple[list[Event], int | None]:
    """The events of `folder`'s batch.jsonl and the byte offset of a torn last line (None if whole)."""
    log = Path(folder) / BATCH_LOG
    read = parse_log(read_log_bytes(log), log, parse_batch_line, "batch event")
    return read.events, read.torn_offset
