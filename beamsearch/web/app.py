"""The Starlette application: read-only routes over a folder of runs, behind a guard.

Pages are static files (their script builds the page from the event stream with `textContent`, so no
data is ever parsed as HTML); the only dynamic answers are the event streams and the run folders'
images, each looked up by a checked name and confined to its folder. A batch folder's address shows
the batch (its log, live); an idea's run inside it has the run page one level down, `/runs/{batch}/{idea}/`.
"""

from __future__ import annotations

from pathlib import Path

from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from beamsearch.batch_store import is_batch
from beamsearch.web import paths
from beamsearch.web.batchlog import BATCH_STARTED
from beamsearch.web.live import LiveBus
from beamsearch.web.streams import Followed, Streams, batch_followed, run_followed, run_stream, runs_stream

STATIC = Path(__file__).parent / "static"
POLL_S = 0.25  # how often a stream looks at a log that no run in this process announces
PING_S = 15  # a comment line this often keeps idle connections open through anything in between

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
SECURITY_NAMES = frozenset(name for name, _ in SECURITY_HEADERS)
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})


def host_name(header: str) -> str:
    """The host of a Host header, without its port (and without the brackets of an IPv6 address)."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else ""
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class Guard:
    """Every answer gets the security headers; only GET and HEAD are served (the view is read-only);
    a request for another host name is refused, so a web page elsewhere cannot reach this server by
    pointing its own name at 127.0.0.1 (DNS rebinding)."""

    def __init__(self, app: ASGIApp, bind_host: str) -> None:
        self.app = app
        bind = bind_host.strip("[]").lower()
        self.any_host = bind in WILDCARD_HOSTS
        self.hosts = LOOPBACK_NAMES | {bind}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in SECURITY_NAMES]
                if not any(k.lower() == b"cache-control" for k, _ in headers):
                    headers.append((b"cache-control", b"no-cache"))
                message = {**message, "headers": headers + SECURITY_HEADERS}
            await send(message)

        refusal = self.refusal(scope)
        if refusal is not None:
            await refusal(scope, receive, with_headers)
            return
        await self.app(scope, receive, with_headers)

    def refusal(self, scope: Scope) -> Response | None:
        if scope["method"] not in ("GET", "HEAD"):
            return PlainTextResponse("This view is read-only.\n", 405, headers={"allow": "GET, HEAD"})
        host = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"host"), "")
        if not self.any_host and host_name(host) not in self.hosts:
            return PlainTextResponse("Unknown host.\n", 400)
        return None


def not_found() -> Response:
    return PlainTextResponse("Not found.\n", 404)


def last_event_id(request: Request) -> int:
    """The last line a reconnecting page saw (0: a new page, or an id that is not a line number)."""
    value = request.headers.get("last-event-id", "").strip()
    return int(value) if value.isdigit() and len(value) <= 12 else 0


def locate(runs_dir: Path, params: dict[str, str]) -> Followed | None:
    """What a run address names: a run or a batch directly inside runs_dir, or an idea's run directly
    inside a batch folder there (`/runs/{batch}/{idea}/`); None for anything else."""
    if "idea" in params:
        folder = paths.idea_folder(runs_dir, params["batch"], params["idea"])
        return None if folder is None else run_followed(folder, f"{params['batch']}/{params['idea']}")
    folder = paths.run_folder(runs_dir, params["name"])
    if folder is None:
        return None
    return batch_followed(folder) if is_batch(folder) else run_followed(folder)


def build_app(runs_dir: Path, bus: LiveBus | None = None, bind_host: str = "127.0.0.1",
              poll: float = POLL_S) -> tuple[ASGIApp, Streams]:
    """The ASGI app serving `runs_dir`, and its streams (to close them all when the server stops)."""
    runs_dir = Path(runs_dir)
    streams = Streams(bus)

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    async def runs_events(request: Request) -> Response:
        return EventSourceResponse(runs_stream(runs_dir, streams, poll), ping=PING_S)

    async def run_page(request: Request) -> Response:
        followed = locate(runs_dir, request.path_params)
        if followed is None:
            return not_found()
        return FileResponse(STATIC / ("batch.html" if followed.opening == BATCH_STARTED else "run.html"))

    async def run_redirect(request: Request) -> Response:
        if locate(runs_dir, request.path_params) is None:
            return not_found()
        names = [request.path_params[k] for k in ("name", "batch", "idea") if k in request.path_params]
        return RedirectResponse("/runs/" + "/".join(names) + "/", 308)

    async def run_events(request: Request) -> Response:
        followed = locate(runs_dir, request.path_params)
        if followed is None:
            return not_found()
        after = last_event_id(request)
        streams.resumed += after > 0
        return EventSourceResponse(run_stream(followed, after, streams, poll), ping=PING_S)

    async def image(request: Request) -> Response:
        followed = locate(runs_dir, request.path_params)
        path = None if followed is None else paths.image_in(followed.folder, request.path_params["file"])
        if path is None:
            return not_found()
        return FileResponse(path, media_type=paths.media_type(path))

    async def no_icon(request: Request) -> Response:
        return Response(status_code=204)

    routes = [
        Route("/", index),
        Route("/favicon.ico", no_icon),
        Route("/events", runs_events),
        Route("/runs/{name}", run_redirect),
        Route("/runs/{name}/", run_page),
        Route("/runs/{name}/events", run_events),
        Route("/runs/{name}/images/{file}", image),
        Route("/runs/{batch}/{idea}", run_redirect),  # an idea's run inside a batch folder
        Route("/runs/{batch}/{idea}/", run_page),
        Route("/runs/{batch}/{idea}/events", run_events),
        Route("/runs/{batch}/{idea}/images/{file}", image),
        Mount("/static", StaticFiles(directory=STATIC)),
    ]
    app = Starlette(routes=routes)
    return Guard(app, bind_host), streams
