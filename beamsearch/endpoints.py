"""Where a resumed run sends its calls and its keys: the user's settings, never the run folder's.

A run folder may come from someone else, and its run.yaml names endpoints (`text/image/vision.base_url`)
and key variables (`api_key_env`). Taken from the folder, they would send the user's key (or any
variable the folder names) to a host the folder chose. So on resume both come from the user's own
settings (flags, environment, their config file). When the folder's recorded endpoint for a paid role
differs from the user's, resume stops with one sentence naming both hosts; `--trust-folder-endpoints`
(`trust_endpoints=True`) accepts the folder's endpoints, still with the user's key variables. Before the
first paid call, resume names the host (and key variable) of each paid role.
"""

from __future__ import annotations

import ipaddress
import os
import urllib.parse
from collections.abc import Mapping
from typing import Any

from beamsearch.errors import SettingsError
from beamsearch.roles import ROLES

TRUST_FLAG = "--trust-folder-endpoints"
OPENAI_HOST = "api.openai.com"
NO_KEY = "none"  # `api_key_env: none`: the role's server needs no key, and none is sent


class MissingKey(LookupError):
    """A role needs a key and its variable is not set (each caller says so in its own sentence)."""


def is_loopback(base_url: str | None) -> bool:
    """Whether a role's endpoint is on this machine (localhost, 127.0.0.0/8, ::1)."""
    if not base_url:
        return False
    host = urllib.parse.urlsplit(base_url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def role_key(settings: Any, environ: Mapping[str, str] | None = None) -> str | None:
    """The key a role sends: the value of its `api_key_env` variable. None means no key at all (and no
    Authorization header): for `api_key_env: none`, or when the variable is unset and the endpoint is on
    this machine (local servers need none). Raises MissingKey when a key is needed and not set."""
    if settings.api_key_env == NO_KEY:
        return None
    value = (os.environ if environ is None else environ).get(settings.api_key_env, "").strip()
    if value:
        return value
    if is_loopback(settings.base_url):
        return None
    raise MissingKey(settings.api_key_env)


def key_source(settings: Any) -> str:
    """Which key a role sends, for the lines that say where calls go."""
    try:
        return "no key" if role_key(settings) is None else f"key from {settings.api_key_env}"
    except MissingKey:
        return f"key from {settings.api_key_env}, not set"


def host_of(base_url: str | None) -> str:
    """The host (and port, if one is given) a role's calls go to: the OpenAI API when no base_url is set."""
    if not base_url:
        return OPENAI_HOST
    parts = urllib.parse.urlsplit(base_url)
    host = parts.hostname or base_url
    return f"{host}:{parts.port}" if parts.port else host


def _same(a: str | None, b: str | None) -> bool:
    return (a or "").rstrip("/") == (b or "").rstrip("/")


def _shown(url: str | None, other: str | None) -> str:
    """The host, or the whole URL when both URLs share a host and differ in their path."""
    return (url or f"https://{OPENAI_HOST}/v1") if host_of(url) == host_of(other) else host_of(url)


def user_endpoints(recorded: dict[str, Any], user: dict[str, Any], trust: bool) -> dict[str, dict[str, Any]]:
    """For each role, the base_url and api_key_env a resume uses: the user's (`user` is their file <
    environment < flags, not yet validated), or, with `trust`, the folder's base_url. Refuses, in one
    sentence naming both hosts and the flag, a paid role whose recorded endpoint differs from the user's."""
    from beamsearch.config import RoleSettings

    chosen: dict[str, dict[str, Any]] = {}
    differing: list[str] = []
    top_provider = recorded.get("provider") or "openai"
    for role in ROLES:
        mine = user.get(role) if isinstance(user.get(role), dict) else {}
        theirs = recorded.get(role) if isinstance(recorded.get(role), dict) else {}
        url, folder_url = mine.get("base_url"), theirs.get("base_url")
        paid = (theirs.get("provider") or top_provider) != "sim"
        if paid and not _same(url, folder_url):
            if trust:
                url = folder_url
            else:
                differing.append(f"{role} calls to {_shown(folder_url, url)} where your settings send them to "
                                 f"{_shown(url, folder_url)}")
        chosen[role] = {"base_url": url,
                        "api_key_env": mine.get("api_key_env") or RoleSettings.model_fields["api_key_env"].default}
    if differing:
        raise SettingsError(
            f"This run folder sends {'; '.join(differing)}: resume with your settings naming that endpoint "
            f"(--config or BEAMSEARCH_<ROLE>__BASE_URL), or pass {TRUST_FLAG} to send your key to the folder's."
        )
    return chosen


def destinations(settings: Any) -> str | None:
    """One line naming where each paid role's calls (and which key variable) go, or None for none."""
    parts = [f"{role} to {host_of(getattr(settings, role).base_url)} ({key_source(getattr(settings, role))})"
             for role in ROLES if settings.role_provider(role) != "sim"]
    return f"Resuming: {', '.join(parts)}." if parts else None
