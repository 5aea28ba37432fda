"""Reading a growing log line by line, as its writer appends to it, without ever handing out half a line.

The writer (another process, or this one) flushes one JSON object per line. A reader that looks while a
line is being written sees its first part without the newline: that part is left where it is and read
again, whole, once the newline is there. A line is numbered by its position in the file (1 = the
first), so a reader can say "from line N on" and get exactly the lines after it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHUNK = 1 << 20  # read at most this much per call, so a huge log is streamed, not loaded
MAX_LINE = 8 << 20  # a longer line is not an event anyone wrote: skipped, and said so


@dataclass
class Line:
    """One complete line: its number, and its event (a JSON object) or why it is not one."""

    number: int
    event: dict[str, Any] | None
    problem: str | None = None


class LogTail:
    """The complete lines of one file that come after those already read. Keeps only a byte offset and
    a line count between calls; a file that does not exist yet simply has no lines."""

    def __init__(self, path: Path, after: int = 0) -> None:
        self.path = Path(path)
        self.after = max(0, after)  # lines up to this number are skipped, not handed out
        self.offset = 0  # bytes of complete lines consumed
        self.lines = 0  # complete lines consumed
        self._skipping = False  # inside an overlong line, looking for its end
        self._looked: tuple[int, int] | None = None  # (size, mtime) when last read: a torn tail is not re-read

    def _stamp(self) -> tuple[int, int] | None:
        try:
            status = os.stat(self.path)
        except OSError:
            return None
        return status.st_size, status.st_mtime_ns

    def has_more(self) -> bool:
        """Cheap (one stat): has the file grown past what was consumed since it was last looked at?"""
        stamp = self._stamp()
        return stamp is not None and stamp[0] > self.offset and stamp != self._looked

    def new_lines(self) -> Iterator[Line]:
        """Every complete line appended since the last look, read a chunk at a time."""
        while self.has_more():
            yield from self.read()

    def read(self, limit: int = CHUNK) -> list[Line]:
        """The next complete lines (about `limit` bytes of them, more only to finish one long line). A
        partial last line stays unread; lines at or below `after` are consumed silently."""
        stamp, start = self._stamp(), self.offset
        data = self._read_on(limit)
        # remembered only when everything there was got read: then an unchanged file has nothing new
        self._looked = stamp if stamp is not None and start + len(data) >= stamp[0] else None
        found: list[Line] = []
        if self._skipping:  # inside an overlong line (already reported): look for its end
            end = data.find(b"\n")
            if end < 0:
                self.offset += len(data)
                return found
            self.offset, self.lines, self._skipping = self.offset + end + 1, self.lines + 1, False
            data = data[end + 1:]
        end = data.rfind(b"\n")
        if end < 0:
            if len(data) >= MAX_LINE:
                self.offset, self._skipping = self.offset + len(data), True
                if self.lines + 1 > self.after:
                    found.append(Line(self.lines + 1, None, f"line {self.lines + 1} is longer than "
                                                            f"{MAX_LINE >> 20} MiB; it is skipped"))
            return found
        for raw in data[: end + 1].split(b"\n")[:-1]:
            self.lines += 1
            if self.lines > self.after and raw.strip():
                found.append(parse_line(self.lines, raw))
        self.offset += end + 1
        return found

    def _read_on(self, limit: int) -> bytes:
        """Bytes from the offset: `limit` of them, or up to MAX_LINE while no newline has been seen."""
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                data = handle.read(max(limit, 1))
                while not self._skipping and b"\n" not in data and len(data) < MAX_LINE:
                    more = handle.read(min(max(limit, 1), MAX_LINE - len(data)))
                    if not more:
                        break
                    data += more
        except OSError:
            return b""
        return data


def parse_line(number: int, raw: bytes) -> Line:
    """One line as an event (a JSON object with a text `type`), or why it is not one."""
    try:
        event = json.loads(raw)
    except ValueError:  # also UnicodeDecodeError
        return Line(number, None, f"line {number} is not JSON")
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        return Line(number, None, f"line {number} is not an event (a JSON object with a type)")
    return Line(number, event)
