"""Progress of a run in this process, handed to the pages that watch it, without ever holding the run up.

A run calls its listeners, `(event: Event) -> None`, for every event: the logged ones (also written to
events.jsonl) and progress that is never logged (a lane entering a stage, an attempt that failed, an
iteration starting, a ranking's survivors). A `LiveBus` is such a listener. Each connected page has a
`Channel`: a bounded queue that drops its oldest entry when a page reads too slowly, so publishing is a
few appends and never waits. With no page connected, publishing does nothing at all.

Logged events are not queued themselves: a page reads those from the log, numbered by line, so a
reconnect resumes exactly. Their arrival only wakes the page's stream, which then reads the new lines
at once instead of at its next poll, in the order the run published them.
"""

from __future__ import annotations

import asyncio
import collections
from pathlib import Path
from typing import Any

from beamsearch.events import Event
from beamsearch.web.runlog import LIVE_TYPES, LOGGED_TYPES

WAKE = "wake"  # queued for a logged event: "read the log now"
QUEUE_SIZE = 512


class Channel:
    """One connected page's queue of progress events, and the signal that wakes its stream. Use it from
    the event loop that runs the server (a run's listeners are called from that loop)."""

    def __init__(self, size: int = QUEUE_SIZE) -> None:
        self.items: collections.deque[tuple[str, Any]] = collections.deque(maxlen=size)
        self.ready = asyncio.Event()
        self.closed = False
        self.dropped = 0

    def offer(self, run_name: str, item: Any) -> None:
        """Queue without waiting; when full, the oldest progress event makes room (the log has the
        facts; progress is only how far each lane has got)."""
        if len(self.items) == self.items.maxlen:
            self.dropped += 1
        self.items.append((run_name, item))
        self.ready.set()

    def close(self) -> None:
        """End the stream that reads this channel (the page will reconnect, if the server still runs)."""
        self.closed = True
        self.ready.set()

    async def wait(self, timeout: float) -> None:
        """Until something is queued, the channel is closed, or `timeout` seconds pass."""
        if not self.ready.is_set():
            try:
                async with asyncio.timeout(timeout):
                    await self.ready.wait()
            except TimeoutError:
                pass
        self.ready.clear()

    def take(self) -> list[tuple[str, Any]]:
        items = list(self.items)
        self.items.clear()
        return items


class LiveBus:
    """A run's listener that streams its progress to the pages connected to the server in its process.

    It attaches itself to the run of each session it listens to (the `run_opened` event; `attach(run_dir)`
    does it by hand, and switches to another run, as a batch would). Events published before any attach,
    or while no page is connected, go nowhere."""

    def __init__(self, run_dir: Path | None = None) -> None:
        self.run_name: str | None = None
        self._channels: set[Channel] = set()
        if run_dir is not None:
            self.attach(run_dir)

    def attach(self, run_dir: Path) -> None:
        self.run_name = Path(run_dir).name

    def __call__(self, event: Event) -> None:
        """The listener: O(pages) appends, no I/O, no waiting; nothing at all with no page connected."""
        if event.type == "run_opened":  # a session starts in this process: follow its run
            self.attach(Path(event.run_dir))  # type: ignore[attr-defined]
            return
        if not self._channels or self.run_name is None:
            return
        logged = event.type in LOGGED_TYPES and not (event.type == "attempt_failed" and event.usage is None)  # type: ignore[attr-defined]
        if logged:  # (an attempt that failed is logged only when it was paid for)
            item: Any = WAKE
        elif event.type in LIVE_TYPES:
            item = event.data()
        else:
            return
        for channel in self._channels:
            channel.offer(self.run_name, item)

    def subscribe(self, channel: Channel) -> None:
        self._channels.add(channel)

    def unsubscribe(self, channel: Channel) -> None:
        self._channels.discard(channel)

    @property
    def connected(self) -> int:
        return len(self._channels)
