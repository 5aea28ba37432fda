"""Reading an event log: its bytes, its lines as typed events, and a torn last line.

There is one reader. It never changes the file: a line that is not a JSON object is *torn* when it is
the last one (a crash, or a writer still busy with it) and corruption anywhere else; an object that is
not a valid event is named by its line and field. What to do with a torn line is the caller's choice:
a reader of someone else's run skips it, the run's own writer cuts it off (see `RunStore`).

A log is data that may come from someone else: every file an event names (an image step's `path`, a
candidate's `image`) must be inside the run folder (`files.confined`), or the whole log is refused with
the line that names it, before anything reads, writes or uploads that file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from beamsearch.errors import RunFolderError
from beamsearch.events import Candidate, Event, NotJson, Step, parse_line
from beamsearch.files import confined, reason, shown

EVENTS_FILE = "events.jsonl"


@dataclass
class LogRead:
    """The complete events of a log, and the line number and byte offset of a torn last line."""

    events: list[Event]
    torn_line: int | None = None
    torn_offset: int | None = None  # where the torn line starts


def read_log_bytes(log: Path) -> bytes:
    """The bytes of an event log (empty if there is none yet), or one sentence saying why it cannot be read."""
    try:
        return log.read_bytes()
    except FileNotFoundError:
        return b""
    except OSError as exc:
        raise RunFolderError(f"{shown(log)} cannot be read: {reason(exc)}.") from None


def parse_log(raw: bytes, log: Path, parse: Callable[[bytes], Event] = parse_line, what: str = "event") -> LogRead:
    """Every event of a log's bytes, each checked by its model (`parse`: a run's `events.parse_line`, or a
    batch's `batch_events.parse_batch_line`; `what` names its events in a message)."""
    events: list[Event] = []
    offset = 0
    lines = raw.split(b"\n")
    for number, line in enumerate(lines, start=1):
        start, offset = offset, offset + len(line) + 1
        if not line.strip():
            continue
        try:
            event = parse(line)
        except NotJson:
            if all(not rest.strip() for rest in lines[number:]):
                return LogRead(events, number, start)
            raise RunFolderError(f"{shown(log)} is corrupt at line {number} (not a JSON object); "
                                 "it cannot be replayed.") from None
        except ValueError as exc:
            raise RunFolderError(f"{shown(log)} line {number} is not a valid {what}: {exc}.") from None
        for path in named_files(event):
            confined(log.parent, path, f"{log.name} line {number}")
        events.append(event)
    return LogRead(events)


def named_files(event: Event) -> list[object]:
    """The files of the run folder that an event names (what replay, judges, the report and `best`
    open): an image step's `path` and a candidate's `image`."""
    if isinstance(event, Step) and "path" in event.result:
        return [event.result["path"]]
    if isinstance(event, Candidate) and event.image is not None:
        return [event.image]
    return []


def read_log(folder: Path) -> LogRead:
    """The events of the log in run folder `folder`, without touching it."""
    log = confined(Path(folder), EVENTS_FILE)
    return parse_log(read_log_bytes(log), log)
