"""Helpers for the web view's tests: an SSE reader over real HTTP, Debian's chromium for Playwright, a
run whose live bus is attached as the core will attach it, and hand-made run folders."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import yaml

from benchmarks.harness import FolderProbe  # noqa: F401 - shared with the benchmark

CHROMIUM = os.environ.get("BEAMSEARCH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium() -> str:
    """Debian's chromium (`.ci/run` installs it); a missing browser fails the test, it never skips it."""
    found = shutil.which(CHROMIUM) or (CHROMIUM if Path(CHROMIUM).is_file() else None)
    if not found:
        raise AssertionError(f"{CHROMIUM} is missing: install Debian's chromium (apt-get -y install chromium); "
                             ".ci/run does this")
    return found


@contextlib.asynccontextmanager
async def browser_page(profile: Path, width: int = 1280, height: int = 900) -> AsyncIterator[Any]:
    """A page of a fresh headless chromium (its own --user-data-dir), driven by Playwright."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(profile), executable_path=chromium(), args=CHROMIUM_ARGS, headless=True,
            viewport={"width": width, "height": height})
        try:
            page = context.pages[0] if context.pages else await context.new_page()
            yield page
        finally:
            await context.close()


@dataclass
class Sse:
    event: str = "message"
    data: str = ""
    id: str | None = None
    retry: int | None = None

    def json(self) -> Any:
        return json.loads(self.data)


class SseReader:
    """Server-sent events of one response, parsed as a browser's EventSource parses them. A task reads
    the lines into a queue, so a reader that stops waiting (a timeout) does not end the stream."""

    def __init__(self, lines: Any) -> None:
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.last_id: str | None = None
        self.comments = 0
        self._pending = Sse()
        self._task = asyncio.get_running_loop().create_task(self._pump(lines))

    async def _pump(self, lines: Any) -> None:
        try:
            async for line in lines:
                await self.queue.put(line)
        finally:
            await self.queue.put(None)

    def close(self) -> None:
        self._task.cancel()

    async def next(self, timeout: float = 5.0) -> Sse:
        """The next event; TimeoutError if none comes in time, StopAsyncIteration once the stream ended."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no event in time")
            try:
                line = await asyncio.wait_for(self.queue.get(), remaining)
            except TimeoutError:
                raise TimeoutError("no event in time") from None
            if line is None:
                self.queue.put_nowait(None)
                raise StopAsyncIteration
            event = self._feed(line)
            if event is not None:
                return event

    def _feed(self, line: str) -> Sse | None:
        if line == "":
            pending = self._pending
            if not (pending.data or pending.event != "message" or pending.id is not None):
                return None
            self._pending = Sse()
            pending.data = pending.data.removesuffix("\n")
            if pending.id is not None:
                self.last_id = pending.id
            return pending
        if line.startswith(":"):
            self.comments += 1
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._pending.data += value + "\n"
        elif name == "event":
            self._pending.event = value
        elif name == "id":
            self._pending.id = value
        elif name == "retry" and value.isdigit():
            self._pending.retry = int(value)
        return None

    async def until(self, predicate: Any, timeout: float = 10.0) -> list[Sse]:
        """Every event up to and including the first for which `predicate` holds."""
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            event = await self.next(max(0.01, deadline - time.monotonic()))
            seen.append(event)
            if predicate(event):
                return seen


@contextlib.asynccontextmanager
async def sse(url: str, last_event_id: str | None = None) -> AsyncIterator[SseReader]:
    headers = {"accept": "text/event-stream"}
    if last_event_id is not None:
        headers["last-event-id"] = last_event_id
    async with httpx2.AsyncClient(trust_env=False, timeout=httpx2.Timeout(30.0)) as client:
        async with client.stream("GET", url, headers=headers) as response:
            assert response.status_code == 200, response.status_code
            assert response.headers["content-type"].startswith("text/event-stream")
            reader = SseReader(response.aiter_lines())
            try:
                yield reader
            finally:
                reader.close()


async def raw_get(port: int, target: str, host: str = "127.0.0.1", method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    """One request exactly as written (no client normalises `..` or percent escapes away)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def make_run(runs_dir: Path, name: str, events: list[dict[str, Any]] | None = None, settings: dict[str, Any] | None = None,
             raw_tail: bytes = b"") -> Path:
    """A run folder written by hand: run.yaml, events.jsonl (each event one line, then `raw_tail`)."""
    folder = Path(runs_dir) / name
    (folder / "images").mkdir(parents=True)
    document = {"format": 1, "version": "0.1.0", "created": "2026-11-21T14:30:02+0000",
                "settings": {"prompt": "a test idea", "n": 2, "m": 1, "iterations": 2, "provider": "sim", **(settings or {})}}
    (folder / "run.yaml").write_text(yaml.safe_dump(document), encoding="utf-8")
    lines = b"".join(json.dumps(e).encode() + b"\n" for e in events or [])
    (folder / "events.jsonl").write_bytes(lines + raw_tail)
    return folder


def append(folder: Path, data: bytes) -> None:
    with open(Path(folder) / "events.jsonl", "ab") as handle:
        handle.write(data)
        handle.flush()
