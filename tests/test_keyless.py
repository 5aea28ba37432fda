"""Servers without keys (issue 17): `api_key_env: none`, or an unset key variable on a loopback endpoint,
sends no key at all: no Authorization header reaches the server, and a run, a resume and the CLI need no
dummy variable. A key that is needed elsewhere is still refused when missing, and never sent where none is."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))

from fake_openai_server import FakeConfig, FakeOpenAI  # noqa: E402

from beamsearch.app import resume_run, start_run  # noqa: E402
from beamsearch.cli import app  # noqa: E402
from beamsearch.config import RoleSettings  # noqa: E402
from beamsearch.errors import AuthError, SettingsError  # noqa: E402
from beamsearch.precedence import resolve  # noqa: E402
from beamsearch.providers.base import TextRequest  # noqa: E402
from beamsearch.providers.openai import build_role  # noqa: E402

ROLES = ("text", "image", "vision")
UNSET = "BEAMSEARCH_TEST_KEY_THAT_IS_NOT_SET"


def flags_for(server: FakeOpenAI, tmp_path: Path, key_env: str) -> dict[str, Any]:
    flags: dict[str, Any] = {"prompt": "a red lighthouse in a storm", "n": 2, "m": 1, "iterations": 1,
                             "provider": "openai", "runs_dir": str(tmp_path / "runs"), "image.size": "64x64"}
    for role in ROLES:
        flags.update({f"{role}.base_url": server.url, f"{role}.api_key_env": key_env})
    return flags


@pytest.mark.parametrize("key_env", ["none", UNSET])
async def test_a_keyless_endpoint_gets_no_authorization_header(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               key_env: str) -> None:
    monkeypatch.delenv(UNSET, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-must-never-be-sent-0123456789")  # the SDK's own variable too
    with FakeOpenAI() as server:
        flags = flags_for(server, tmp_path, key_env)
        result = await start_run(resolve(None, flags))
        assert result.exit_code == 0, result.error
        again = await resume_run(result.store.path, flags={**{k: v for k, v in flags.items() if "." in k},
                                                            "iterations": 2})
        assert again.exit_code == 0, again.error
    assert server.total_requests() > 0
    assert set(server.authorization_headers) == {None}


def test_the_cli_runs_against_a_keyless_server_without_any_key_variable(tmp_path: Path) -> None:
    with FakeOpenAI() as server:
        args = ["run", "--prompt", "a boat", "-n", "1", "-m", "1", "--iterations", "1", "--runs-dir",
                str(tmp_path / "runs"), "--json"]
        env = {f"BEAMSEARCH_{role.upper()}__BASE_URL": server.url for role in ROLES}
        env["BEAMSEARCH_IMAGE__SIZE"] = "64x64"
        result = CliRunner().invoke(app, args, env={**env, "OPENAI_API_KEY": ""})
    assert result.exit_code == 0, result.output
    assert server.total_requests() > 0 and set(server.authorization_headers) == {None}


async def test_a_key_is_still_needed_off_this_machine_and_sent_when_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(UNSET, raising=False)
    with pytest.raises(SettingsError, match=f"needs an API key in the environment variable {UNSET}"):
        build_role("text", RoleSettings(base_url="https://api.example.com/v1", api_key_env=UNSET))
    monkeypatch.setenv(UNSET, "sk-local-but-keyed-0123456789")
    with FakeOpenAI() as server:
        role = build_role("text", RoleSettings(base_url=server.url, api_key_env=UNSET))
        await role.complete(TextRequest(key="k", task="expand_what", system="s", user="The idea: a boat"))
        await role.aclose()
    assert server.authorization_headers == ["Bearer sk-local-but-keyed-0123456789"]


async def test_a_server_that_wants_a_key_says_so_to_a_keyless_role() -> None:
    with FakeOpenAI(FakeConfig(api_key="sk-the-servers-own-key-123456")) as server:
        role = build_role("text", RoleSettings(base_url=server.url, api_key_env="none"))
        with pytest.raises(AuthError, match="asks for an API key .* and none was sent"):
            await role.complete(TextRequest(key="k", task="expand_what", system="s", user="u"))
        await role.aclose()
    assert server.authorization_headers == [None]
