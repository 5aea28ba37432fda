"""How many requests a local OpenAI-compatible server serves at once, when it says so.

A one-slot server (llama.cpp started without `--parallel`) queues what it cannot serve yet, and a queued
request's wait counts against the client's timeout: sixteen expansions sent at once to such a server
time out together, are retried together and time out again. llama.cpp says how many slots it has:
`GET /slots` is an array with one object per slot, and `GET /props` holds `total_slots` (`/slots` can be
turned off with `--no-slots`, `/props` cannot). Both sit at the server's root, beside `/v1`.

Only a server on this machine or a private network is asked (a hosted API has no such route, and a
request it does not expect is not ours to send), once per role and session, with a short timeout, and
any failure simply means "it does not say". vLLM, Ollama and LM Studio do not publish their parallelism
in a form this reads; their concurrency stays as configured.
"""

from __future__ import annotations

import ipaddress
import json
import urllib.parse
from typing import Any

PROBE_TIMEOUT_S = 2.0
MAX_SLOTS = 4096  # a larger figure is not a slot count


def is_local(base_url: str | None) -> bool:
    """Whether `base_url` names this machine or a private network: `localhost`, or a loopback, private or
    link-local address (a host name is not resolved for this: only what it plainly says counts)."""
    if not base_url:
        return False
    host = urllib.parse.urlsplit(base_url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_link_local


def root_of(base_url: str) -> str:
    """The server's root: the base URL without a trailing `/v1` (where llama.cpp serves /slots)."""
    parts = urllib.parse.urlsplit(base_url)
    path = parts.path.rstrip("/")
    if path.endswith("/v1"):
        path = path[: -len("/v1")]
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def slots_in(route: str, data: Any) -> int | None:
    """The slot count in an answer of `/slots` (a list, one object per slot) or `/props` (`total_slots`)."""
    if route == "slots" and isinstance(data, list) and data and all(isinstance(s, dict) for s in data):
        count = len(data)
    elif route == "props" and isinstance(data, dict) and type(data.get("total_slots")) is int:
        count = data["total_slots"]
    else:
        return None
    return count if 1 <= count <= MAX_SLOTS else None


async def ask_slots(client: Any, base_url: str | None) -> int | None:
    """The slot count the server at `base_url` reports through `client` (an `AsyncOpenAI`, so the same
    key goes to the same host, with the same capped transport), or None."""
    if not is_local(base_url):
        return None
    import httpx2

    assert base_url is not None
    root = root_of(base_url)
    for route in ("slots", "props"):
        try:
            response = await client.get(f"{root}/{route}", cast_to=httpx2.Response,
                                        options={"timeout": PROBE_TIMEOUT_S})
            count = slots_in(route, json.loads(response.content))
        except Exception:  # any failure (a 404, a 501, no such route, not JSON) means "it does not say"
            continue
        if count is not None:
            return count
    return None
