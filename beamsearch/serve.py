"""The local live web view: `beamsearch serve`, and the same server inside a run's own process.

    async with serving(runs_dir, host, port, live_bus=bus) as server:   # inside the run's event loop
        bus.attach(run_dir)                                               # once the run folder exists
        result = await start_run(settings, listeners + [bus])             # bus is a listener
        # server.url, server.run_url(name), server.streams (open streams, counts)

`LiveBus` is a run listener `(event: dict) -> None`: with no page connected it does nothing; with pages
connected it appends progress events to each page's bounded queue and never waits. The server binds
127.0.0.1 unless told otherwise, only reads, and reads nothing while no page is connected.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import uvicorn

from beamsearch.batch_store import is_batch
from beamsearch.errors import SettingsError
from beamsearch.web import paths, runlog
from beamsearch.web.app import POLL_S, build_app
from beamsearch.web.live import LiveBus

__all__ = ["LiveBus", "WebServer", "serving", "serve_forever"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the process that runs the server owns Ctrl-C (a run uses it
    to stop and record the stop; `serve` to stop serving)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready socket on host:port, or one sentence saying why there cannot be one."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError, OverflowError):
        raise SettingsError(f"--host {host!r} is not an address of this machine; use 127.0.0.1 (this machine only) "
                            "or 0.0.0.0 (every network it is on).") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise SettingsError(f"Port {port} on {host} is already in use; pass --port with another port "
                                "(or 0 for any free one).") from None
        problem = (exc.strerror or str(exc)).lower()
        raise SettingsError(f"Cannot listen on {host} port {port}: {problem}; pass another --host or --port.") from None
    sock.setblocking(False)
    return sock


class WebServer:
    """The web view of `runs_dir`, served by uvicorn inside the caller's event loop."""

    def __init__(self, runs_dir: Path, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                 live_bus: LiveBus | None = None, poll: float = POLL_S) -> None:
        self.runs_dir = Path(runs_dir)
        self.host = host
        self.port = port
        app, self.streams = build_app(self.runs_dir, live_bus, host, poll)
        self._config = uvicorn.Config(app, log_config=None, log_level="warning", access_log=False, lifespan="off",
                                      ws="none", server_header=False, timeout_graceful_shutdown=STOP_TIMEOUT_S / 2)
        self._server = _Server(self._config)
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        shown = "127.0.0.1" if self.host in ("", "0.0.0.0") else ("[::1]" if self.host == "::" else self.host)
        shown = f"[{shown}]" if ":" in shown and not shown.startswith("[") else shown
        return f"http://{shown}:{self.port}/"

    def run_url(self, name: str) -> str:
        return f"{self.url}runs/{name}/"

    async def start(self) -> None:
        """Bind (one sentence if the port is taken) and serve in the background of this loop."""
        sock = bind(self.host, self.port)
        self.port = sock.getsockname()[1]
        self._task = asyncio.get_running_loop().create_task(self._server.serve(sockets=[sock]))
        deadline = asyncio.get_running_loop().time() + START_TIMEOUT_S
        while not self._server.started:
            if self._task.done() or asyncio.get_running_loop().time() > deadline:
                sock.close()
                self._task.cancel()
                raise SettingsError(f"The web view could not start on {self.host} port {self.port}.")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """End every open stream (pages see the server go), then stop serving."""
        if self._task is None:
            return
        self.streams.close_all()
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), STOP_TIMEOUT_S)
        except TimeoutError:
            self._server.force_exit = True
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self._task = None


@contextlib.asynccontextmanager
async def serving(runs_dir: Path, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                  live_bus: LiveBus | None = None, poll: float = POLL_S) -> AsyncIterator[WebServer]:
    """Serve the web view of `runs_dir` while the block runs, in the caller's event loop (a run's own
    process: pass its `LiveBus` so pages get the progress that is not logged)."""
    server = WebServer(runs_dir, host, port, live_bus, poll)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def where_to_serve(path: Path) -> tuple[Path, str | None]:
    """(runs folder, run to open): a run (or batch) folder given instead of the folder of runs opens it."""
    path = Path(path)
    if (runlog.is_run_folder(path) or is_batch(path)) and paths.valid_run_name(path.resolve().name):
        return path.resolve().parent, path.resolve().name
    return path, None


async def serve_forever(runs_dir: Path, host: str, port: int, open_page: bool, say: Callable[[str], None]) -> None:
    """`beamsearch serve`: serve until Ctrl-C (or SIGTERM), saying where, and opening a browser if asked."""
    import signal

    folder, run = where_to_serve(runs_dir)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    async with serving(folder, host, port) as server:
        url = server.run_url(run) if run else server.url
        say(f"Serving the runs in {folder} at {url} (read-only; Ctrl-C stops it).")
        if host not in ("127.0.0.1", "localhost", "::1"):
            say(f"Warning: listening on {host}, so anyone who can reach this machine can see these runs.")
        if open_page:
            import webbrowser

            if not await asyncio.to_thread(webbrowser.open, url):
                say(f"No browser could be opened; open {url} yourself.")
        await stop.wait()
    say("Stopped.")
