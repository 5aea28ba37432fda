"""The server-sent event streams: one run's log (then live), one batch's log (then live), and the list of
runs and batches (live).

A run's stream sends every logged event from the start, as the log's lines, with the line number as
the event id; then it follows the log as lines are appended. A page that reconnects sends the last id
it saw (`Last-Event-ID`) and gets exactly the lines after it, so it shows no event twice. A line still
being written is never sent in part. Progress that is not logged (`event: live`, no id) comes from the
run's `LiveBus` when the run runs in this process. `event: meta` (no id) carries the run's settings and
whether it is running; `event: problem` (with its line's id) says a line is not an event. A batch's
stream is the same stream over its batch.jsonl, its `meta` the batch's ideas (`batchlog.batch_meta`).

All the reading happens inside a connected page's stream: with no page connected nothing is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sse_starlette import ServerSentEvent

from beamsearch.web import batchlog, runlog
from beamsearch.web.listing import RunsList
from beamsearch.web.live import WAKE, Channel, LiveBus
from beamsearch.web.tail import Line, LogTail

RETRY_MS = 1000  # how soon a page reconnects after its stream ends
STATUS_EVERY = 2.0  # seconds between checks of whether a process still holds a run's lock
BATCH_S = 0.05  # after a wake, gather what else comes this long, so a burst goes out in one write
BATCH_EVENTS = 256  # events per write at most


def encode(data: Any) -> str:
    """One line of JSON (SSE splits data at newlines; JSON escapes every one inside strings)."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


class Streams:
    """Every open stream of one server, so that stopping the server (or a test) can end them all, and
    the counts a test or a benchmark can check."""

    def __init__(self, bus: LiveBus | None = None) -> None:
        self.bus = bus
        self.open: set[Channel] = set()
        self.opened = 0  # streams ever opened
        self.resumed = 0  # of them, how many resumed after a Last-Event-ID

    @contextlib.contextmanager
    def channel(self, live: bool = True) -> Iterator[Channel]:
        """A channel for one stream, closed with the others by `close_all`; with `live`, the run's
        progress comes through it too."""
        channel = Channel()
        self.open.add(channel)
        self.opened += 1
        if live and self.bus is not None:
            self.bus.subscribe(channel)
        try:
            yield channel
        finally:
            self.open.discard(channel)
            if self.bus is not None:
                self.bus.unsubscribe(channel)

    def close_all(self) -> None:
        for channel in list(self.open):
            channel.close()

    def is_live(self, name: str) -> bool:
        return self.bus is not None and self.bus.run_name == name


def line_event(line: Line) -> ServerSentEvent:
    if line.event is not None:
        try:
            return ServerSentEvent(id=str(line.number), data=encode(line.event))
        except ValueError:  # NaN or infinity: not JSON a browser can parse
            line = Line(line.number, None, f"line {line.number} holds a number that is not finite")
    return ServerSentEvent(id=str(line.number), event="problem", data=encode({"line": line.number, "problem": line.problem}))


def read_new(tail: LogTail, opening: str) -> Iterator[tuple[ServerSentEvent, bool]]:
    """Every complete line appended since the last look, and whether it started a session."""
    for line in tail.new_lines():
        yield line_event(line), bool(line.event and line.event.get("type") == opening)


def batches(events: list[ServerSentEvent]) -> Iterator[bytes]:
    """Events joined into few writes: each write to a socket costs the run's loop far more than its bytes."""
    for start in range(0, len(events), BATCH_EVENTS):
        yield b"".join(event.encode() for event in events[start:start + BATCH_EVENTS])


@dataclass(frozen=True)
class Followed:
    """What one page follows: a folder's append-only log, numbered by line, and its `meta` (what the log
    does not say). A run's page follows events.jsonl, a batch's page batch.jsonl: the same stream."""

    key: str  # the page's name for it: a run's folder name, or "batch/idea" for an idea's run
    folder: Path
    log: Path
    meta: Callable[[Path, bool], dict[str, Any]]
    opening: str  # the event that starts a session: the status is sent again after it


def run_followed(folder: Path, key: str | None = None) -> Followed:
    return Followed(key or folder.name, folder, runlog.events_path(folder), runlog.run_meta, "run_started")


def batch_followed(folder: Path) -> Followed:
    return Followed(folder.name, folder, batchlog.log_path(folder), batchlog.batch_meta, batchlog.BATCH_STARTED)


class RunFeed:
    """What one page is sent of one run (or batch): the log's new lines and the bus's progress, in order."""

    def __init__(self, followed: Followed, after: int, streams: Streams, channel: Channel) -> None:
        self.followed, self.folder, self.name = followed, followed.folder, followed.key
        self.streams, self.channel = streams, channel
        self.tail = LogTail(followed.log, after)
        self.running: bool | None = None
        self.checked = time.monotonic()

    async def meta(self, first: bool = False) -> ServerSentEvent:
        meta = await asyncio.to_thread(self.followed.meta, self.folder, self.streams.is_live(self.name))  # off the loop
        self.running, self.checked = meta["running"], time.monotonic()
        return ServerSentEvent(event="meta", data=encode(meta), retry=RETRY_MS if first else None)

    async def round(self) -> list[ServerSentEvent]:
        """Everything new since the last round: queued progress and new lines in the order the run
        published them, then lines no wake announced (a writer in another process), then the status."""
        out: list[ServerSentEvent] = []
        restarted = False
        opening = self.followed.opening
        for run_name, item in self.channel.take():
            if run_name != self.name:
                continue
            if item == WAKE:
                for sse, started in read_new(self.tail, opening):
                    out.append(sse)
                    restarted |= started
            else:
                out.append(ServerSentEvent(event="live", data=encode(item)))
        for sse, started in read_new(self.tail, opening):
            out.append(sse)
            restarted |= started
        if restarted or (time.monotonic() - self.checked >= STATUS_EVERY and runlog.is_running(self.folder) != self.running):
            out.append(await self.meta())
        elif time.monotonic() - self.checked >= STATUS_EVERY:
            self.checked = time.monotonic()
        return out


async def run_stream(followed: Followed, after: int, streams: Streams, poll: float) -> AsyncIterator[bytes]:
    """One run's (or batch's) events: the log after line `after`, then live. Ends when the server closes it."""
    with streams.channel() as channel:
        feed = RunFeed(followed, after, streams, channel)
        yield (await feed.meta(first=True)).encode()
        while not channel.closed:
            for chunk in batches(await feed.round()):
                yield chunk
                await asyncio.sleep(0)  # a long log is sent in pieces, never in one hold of the loop
            await channel.wait(poll * 4 if streams.is_live(feed.name) else poll)
            if channel.items and not channel.closed:
                await asyncio.sleep(BATCH_S)  # a burst (lanes finishing together) goes out as one write


async def runs_stream(runs_dir: Path, streams: Streams, poll: float) -> AsyncIterator[ServerSentEvent]:
    """The list of runs, sent again whenever anything in it changes."""
    runs, last = RunsList(runs_dir), None
    with streams.channel(live=False) as channel:
        first = True
        while not channel.closed:
            snapshot = runs.snapshot()
            if snapshot != last:
                yield ServerSentEvent(event="runs", data=encode(snapshot), retry=RETRY_MS if first else None)
                last, first = snapshot, False
            await channel.wait(poll * 4)
            channel.take()
