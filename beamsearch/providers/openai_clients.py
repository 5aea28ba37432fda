"""The OpenAI SDK's clients for the openai provider: loaded early, built once per endpoint.

The SDK takes about half a second of CPU to import, so `preload()` can start that import in a background
thread as soon as a run is known to need it. Roles that name the same endpoint (base URL and key) share one
`AsyncOpenAI` client and its connection pool (`ClientPool`), so text and vision on one server reuse each
other's connections; a plain-http endpoint gets no TLS context (building one loads the CA bundle, tens
of milliseconds per client, for a connection that never uses it).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import json
import threading
import urllib.parse
import weakref
from typing import Any

_preloading: threading.Thread | None = None
KEYLESS = "no-key"  # what the SDK is given for a server without keys (never sent: see OpenAIRole._post)


def _import_sdk() -> None:
    try:
        import httpx2  # noqa: F401
        import openai  # noqa: F401
    except Exception:  # the import that needs it reports the problem
        return


def preload() -> threading.Thread:
    """Start importing the OpenAI SDK in a background thread (once per process), so that building the
    providers later does not wait for all of it. Call it as early as a run is known to need the openai
    provider, before the run folder and the rest of the run are prepared. Only third-party modules are
    imported in the thread (never a beamsearch module), so it cannot deadlock with imports of the caller."""
    global _preloading
    if _preloading is None:
        _preloading = threading.Thread(target=_import_sdk, name="beamsearch-preload-openai", daemon=True)
        _preloading.start()
    return _preloading


@functools.cache
def sdk_failures() -> tuple[type[BaseException], ...]:
    """What a call through the SDK may raise besides our own errors (all mapped by `openai_errors`)."""
    import httpx2
    import openai
    import pydantic

    return (openai.OpenAIError, httpx2.HTTPError, json.JSONDecodeError, pydantic.ValidationError, UnicodeDecodeError)


@dataclasses.dataclass
class _Shared:
    client: Any
    transport: Any = None  # its `bounded.CappedTransport`, whose image cap the image role sets
    users: int = 0
    slots: Any = None  # the asking of the server's slot count (`openai_slots`): once per endpoint


def new_client(base_url: str | None, key: str) -> tuple[Any, Any]:
    """An `AsyncOpenAI` client without retries, and its transport, which caps every answer (`bounded`).
    For a plain-http endpoint the transport gets `verify=None`: httpx2 then hands its connection pool no
    TLS context, and httpcore2 makes one only if a connection ever needs TLS (a redirect to https),
    instead of loading the CA bundle up front."""
    import openai

    from beamsearch.endpoints import host_of
    from beamsearch.providers.bounded import MAX_CHAT_BYTES, CappedTransport, bounded_client

    verify = None if base_url is not None and urllib.parse.urlsplit(base_url).scheme == "http" else True
    transport = CappedTransport(MAX_CHAT_BYTES, host_of(base_url), verify)
    http_client = bounded_client(MAX_CHAT_BYTES, base_url, verify, transport)
    # a keyless endpoint's client holds a stand-in the SDK insists on; its requests leave the header out
    return openai.AsyncOpenAI(api_key=key or KEYLESS, base_url=base_url, max_retries=0,
                              http_client=http_client), transport


class ClientPool:
    """One client per distinct endpoint (base URL + key), shared by the roles that use it, closed when
    the last of them closes. A pool belongs to one event loop: pooled connections cannot move between
    loops, so `for_running_loop` keeps one pool per loop (and none outside a loop)."""

    _by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ClientPool] = weakref.WeakKeyDictionary()

    def __init__(self) -> None:
        self._clients: dict[tuple[str | None, str], _Shared] = {}

    @classmethod
    def for_running_loop(cls) -> ClientPool:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return cls()  # built outside a loop: a pool of its own, shared with nobody
        pool = cls._by_loop.get(loop)
        if pool is None:
            pool = cls._by_loop[loop] = cls()
        return pool

    def acquire(self, base_url: str | None, key: str, image_cap: int | None = None) -> _Shared:
        """The client of an endpoint (base URL and key); an image role brings the cap of its answers."""
        ident = (base_url.rstrip("/") if base_url else None, hashlib.sha256(key.encode()).hexdigest())
        shared = self._clients.get(ident)
        if shared is None:
            shared = self._clients[ident] = _Shared(*new_client(base_url, key))
        if image_cap is not None:
            shared.transport.image_cap = image_cap
        shared.users += 1
        return shared

    async def release(self, shared: _Shared) -> None:
        shared.users -= 1
        if shared.users <= 0:
            for ident, other in list(self._clients.items()):
                if other is shared:
                    del self._clients[ident]
            await shared.client.close()

    def __len__(self) -> int:
        return len(self._clients)
