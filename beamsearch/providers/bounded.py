"""Bounded answers: the most bytes an answer may hold, and image URLs fetched only where they may be.

A service (or whatever answers at its address) decides how big its answer is. Read whole, a 120 MB
base64 image took the process to 1.3 GB, so every answer is counted as it streams in and cut off at a
cap (`bounded_client`): the body of an image answer may hold `max_download_bytes` of image as base64,
a chat answer `MAX_CHAT_BYTES`. An oversized answer is `AnswerTooLarge`, an OpenAIError that the SDK
passes on as it is and `openai_errors` turns into a failure naming the host.

Image URLs (`download`) are fetched over https, or over http only from the host of the configured
endpoint itself (a local server); redirects are followed only to that same host. The download is part
of the image attempt, but the picture is already made and paid for: a transient failure (no connection,
a timeout, a 429 or 5xx) is tried again a few times in place, and a download that still fails ends the
step (its lane fails, the generation's cost is counted) rather than paying for a new picture.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import openai

from beamsearch.endpoints import host_of
from beamsearch.errors import FatalCallError

MAX_CHAT_BYTES = 4_000_000  # a chat answer of at most a few thousand tokens is kilobytes, never megabytes
DOWNLOAD_TRIES = 3
MAX_REDIRECTS = 3
LIMITS = httpx2.Limits(max_connections=1000, max_keepalive_connections=100)  # the SDK's own defaults


class AnswerTooLarge(openai.OpenAIError):
    """An answer larger than its cap; the rest of it was never read."""

    def __init__(self, host: str, cap: int) -> None:
        super().__init__(f"the answer from {host} is larger than {cap} bytes")
        self.host = host
        self.cap = cap


def body_cap(role: str, settings: Any) -> int:
    """The most bytes one answer of `role` may hold: an image's base64 (4/3 of its bytes) plus room for
    the JSON around it, or a chat answer's cap."""
    if role == "image":
        return int(getattr(settings, "max_download_bytes", 50_000_000)) * 4 // 3 + 65_536
    return MAX_CHAT_BYTES


class _Capped(httpx2.AsyncByteStream):
    def __init__(self, inner: Any, cap: int, host: str) -> None:
        self.inner, self.cap, self.host = inner, cap, host

    async def __aiter__(self) -> AsyncIterator[bytes]:
        size = 0
        async for chunk in self.inner:
            size += len(chunk)
            if size > self.cap:
                raise AnswerTooLarge(self.host, self.cap)
            yield chunk

    async def aclose(self) -> None:
        await self.inner.aclose()


class CappedTransport(httpx2.AsyncBaseTransport):
    """The usual transport, with every response body cut off at its cap (checked on its declared length
    first, then as it streams, since a server may declare none): image answers at `image_cap`, every
    other answer at `cap`. One endpoint's roles share the transport (`openai_clients.ClientPool`)."""

    def __init__(self, cap: int, host: str, verify: Any = True, image_cap: int | None = None) -> None:
        self.inner = httpx2.AsyncHTTPTransport(limits=LIMITS, verify=verify)
        self.cap, self.host = cap, host
        self.image_cap = image_cap if image_cap is not None else cap

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        cap = self.image_cap if request.url.path.endswith("/images/generations") else self.cap
        response = await self.inner.handle_async_request(request)
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            await response.aclose()
            raise AnswerTooLarge(self.host, cap)
        response.stream = _Capped(response.stream, cap, self.host)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def bounded_client(cap: int, base_url: str | None, verify: Any = True,
                   transport: CappedTransport | None = None) -> httpx2.AsyncClient:
    """The HTTP client for one endpoint's SDK client: the SDK's defaults, answers capped at `cap`
    (`verify=None` for plain http: no TLS context made up front)."""
    return openai.DefaultAsyncHttpxClient(transport=transport or CappedTransport(cap, host_of(base_url), verify),
                                          verify=verify)


# --- image URLs -------------------------------------------------------------------------------------


def _allowed(url: str, endpoint: str | None) -> str | None:
    """Why `url` may not be fetched, or None: https anywhere; http only from the endpoint's own host."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return None
    if parts.scheme == "http" and parts.hostname and endpoint and host_of(url) == host_of(endpoint):
        return None
    return f"the image service gave a URL on {host_of(url) if parts.hostname else repr(url[:60])}, which is not " \
           "https (plain http is fetched only from the configured endpoint's own host)"


async def _fetch(client: httpx2.AsyncClient, url: str, endpoint: str | None, cap: int) -> bytes:
    """One GET of an image URL, following redirects to the same host only, its body capped."""
    for _ in range(MAX_REDIRECTS + 1):
        if (problem := _allowed(url, endpoint)) is not None:
            raise FatalCallError(problem)
        async with client.stream("GET", url) as response:
            if response.is_redirect:
                target = urllib.parse.urljoin(url, response.headers.get("location", ""))
                if host_of(target) != host_of(url):
                    raise FatalCallError(f"the image download from {host_of(url)} was redirected to another host, "
                                         f"{host_of(target)}, which is not followed")
                url = target
                continue
            if response.status_code >= 400:
                raise _Transient(response.status_code) if response.status_code in (408, 429) or \
                    response.status_code >= 500 else FatalCallError(
                        f"downloading the image from {host_of(url)} failed ({response.status_code})")
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > cap:
                    raise FatalCallError(f"the image at {host_of(url)} is larger than max_download_bytes ({cap})")
                chunks.append(chunk)
            return b"".join(chunks)
    raise FatalCallError(f"the image download from {host_of(url)} was redirected more than {MAX_REDIRECTS} times")


class _Transient(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"status {status}")
        self.status = status


async def download(url: str, *, endpoint: str | None, cap: int, timeout: float) -> bytes:
    """The image at `url`, tried up to DOWNLOAD_TRIES times on transient failures; a FatalCallError
    naming the host when it cannot be had (the step fails; its generation is not asked again)."""
    host = host_of(url)
    last = ""
    async with httpx2.AsyncClient(timeout=timeout, follow_redirects=False, limits=LIMITS) as client:
        for attempt in range(DOWNLOAD_TRIES):
            if attempt:
                await asyncio.sleep(0.5 * 2 ** (attempt - 1))
            try:
                return await _fetch(client, url, endpoint, cap)
            except _Transient as exc:
                last = f"it answered {exc.status}"
            except httpx2.TimeoutException:
                last = "it timed out"
            except httpx2.HTTPError as exc:
                last = f"the connection failed ({type(exc).__name__})"
    raise FatalCallError(f"downloading the image from {host} failed {DOWNLOAD_TRIES} times ({last}); the picture "
                         "was paid for, so it is not made again")
