"""The openai provider's fast path over real HTTP to the loopback server: the server's rate-limit headers
reach the result's meta and a 429's error, roles of one endpoint share one client, a plain-http endpoint
builds no TLS context, the SDK import can start early, and the price table is read once."""

from __future__ import annotations

import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import openai
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake_openai_server import FakeConfig, FakeOpenAI  # noqa: E402

from beamsearch import app, costs  # noqa: E402
from beamsearch.config import ImageRoleSettings, RoleSettings, VisionRoleSettings  # noqa: E402
from beamsearch.errors import RetryableError  # noqa: E402
from beamsearch.precedence import resolve  # noqa: E402
from beamsearch.providers.base import ImageRequest, TextRequest, VisionRequest  # noqa: E402
from beamsearch.providers.openai import build_role  # noqa: E402
from beamsearch.ratelimit import RateAdvice  # noqa: E402

KEY_ENV = "FAKE_OPENAI_CLIENTS_KEY"
KEY = "sk-clients-0a1b2c3d4e5f60718293"
ADVICE = {"x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "59",
          "x-ratelimit-reset-requests": "1s", "x-request-id": "req_abc123"}


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv(KEY_ENV, KEY)
    with FakeOpenAI(FakeConfig(api_key=KEY)) as fake:
        yield fake


def roles(url: str, **extra: Any) -> dict[str, Any]:
    common = {"base_url": url, "api_key_env": KEY_ENV, "timeout": 5.0, **extra}
    return {"text": build_role("text", RoleSettings(**common)),
            "vision": build_role("vision", VisionRoleSettings(**common)),
            "image": build_role("image", ImageRoleSettings(**common, size="64x64"))}


def ask() -> TextRequest:
    return TextRequest(key="i0/c00/expand_what", task="expand_what", system="You write.", user="The idea: a boat")


# --- rate-limit headers -------------------------------------------------------------------------


async def test_every_result_reports_the_servers_rate_limit_headers(server: FakeOpenAI, tmp_path: Path) -> None:
    server.config.headers = dict(ADVICE)
    built = roles(server.url)
    expected = {"limit": 60, "remaining": 59, "reset_s": 1.0}
    text = await built["text"].complete(ask())
    assert text.meta["ratelimit"] == expected and text.meta["request_id"] == "req_abc123"
    image = await built["image"].generate(ImageRequest(key="i0/c00/image", prompt="a blue boat"))
    assert image.meta["ratelimit"] == expected
    picture = tmp_path / "i0c00.png"
    picture.write_bytes(image.data)
    judged = await built["vision"].judge(VisionRequest(
        key="i0/c00/judge_aesthetic", task="judge_aesthetic", system="Judge.", user="Judge it.",
        schema={"type": "object"}, schema_name="judge_aesthetic", images=(picture,)))
    assert judged.meta["ratelimit"] == expected
    server.config.headers = {}
    assert "ratelimit" not in (await built["text"].complete(ask())).meta  # no headers, no advice
    for role in built.values():
        await role.aclose()


async def test_a_429_carries_the_advice_on_its_error(server: FakeOpenAI) -> None:
    server.config.headers = {"x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "0",
                             "x-ratelimit-reset-requests": "6m0s"}
    role = build_role("text", RoleSettings(base_url=server.url, api_key_env=KEY_ENV))
    server.queue_fault("text", "429")
    with pytest.raises(RetryableError) as caught:
        await role.complete(ask())
    advice = caught.value.ratelimit
    assert isinstance(advice, RateAdvice) and (advice.limit, advice.remaining, advice.reset_s) == (60, 0, 360.0)
    assert caught.value.pause_service and caught.value.retry_after == pytest.approx(0.02)
    await role.aclose()


# --- one client per endpoint --------------------------------------------------------------------


class CountingClient(openai.AsyncOpenAI):
    made: list[Any] = []

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        CountingClient.made.append(self)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    CountingClient.made = []
    monkeypatch.setattr(openai, "AsyncOpenAI", CountingClient)
    return CountingClient.made


async def test_roles_of_one_endpoint_share_one_client_until_the_last_closes(
        server: FakeOpenAI, counted: list[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    built = roles(server.url)
    assert len(counted) == 1 and built["text"].client is built["vision"].client is built["image"].client
    monkeypatch.setenv("OTHER_CLIENTS_KEY", "sk-other-99887766554433221100")
    other_key = build_role("text", RoleSettings(base_url=server.url, api_key_env="OTHER_CLIENTS_KEY"))
    elsewhere = build_role("text", RoleSettings(base_url=server.url.replace("127.0.0.1", "localhost"),
                                                api_key_env=KEY_ENV))
    assert len(counted) == 3 and len({id(r.client) for r in (built["text"], other_key, elsewhere)}) == 3
    await built["text"].aclose()
    assert not built["vision"].client.is_closed()  # the others still use it
    assert (await built["vision"].complete(ask())).text
    await built["vision"].aclose()
    await built["image"].aclose()
    assert built["image"].client.is_closed()
    await elsewhere.aclose()
    await other_key.aclose()


async def test_the_app_builds_one_client_for_roles_on_one_server(server: FakeOpenAI, counted: list[Any],
                                                                 tmp_path: Path) -> None:
    settings = resolve(None, {"provider": "openai", "runs_dir": str(tmp_path), "prompt": "a boat",
                              **{f"{role}.base_url": server.url for role in ("text", "image", "vision")},
                              **{f"{role}.api_key_env": KEY_ENV for role in ("text", "image", "vision")}}, environ={})
    providers = app.build_providers(settings)
    assert len(counted) == 1
    await providers.aclose()
    assert counted[0].is_closed()


# --- no TLS for plain http ----------------------------------------------------------------------


@pytest.fixture
def tls_contexts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every TLS context made while the test runs (ssl.create_default_context makes one too)."""
    made: list[str] = []
    real_new = ssl.SSLContext.__new__

    def counting_new(cls: type, *args: Any, **kwargs: Any) -> Any:
        made.append(cls.__name__)
        return real_new(cls, *args, **kwargs)

    monkeypatch.setattr(ssl.SSLContext, "__new__", counting_new)
    return made


async def test_a_plain_http_endpoint_builds_no_tls_context(server: FakeOpenAI, tls_contexts: list[str]) -> None:
    built = roles(server.url)
    assert (await built["text"].complete(ask())).text
    assert tls_contexts == []
    for role in built.values():
        await role.aclose()


async def test_an_https_endpoint_still_verifies_certificates(monkeypatch: pytest.MonkeyPatch,
                                                             tls_contexts: list[str]) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    role = build_role("text", RoleSettings(base_url="https://127.0.0.1:9/v1", api_key_env=KEY_ENV))
    assert tls_contexts  # the counter sees contexts: the http case above is not passing by accident
    await role.aclose()


# --- start-up -----------------------------------------------------------------------------------


def test_the_provider_module_is_light_and_preload_imports_the_sdk() -> None:
    code = ("import sys; import beamsearch.providers.openai as provider\n"
            "assert 'openai' not in sys.modules, 'the provider module imports the SDK itself'\n"
            "thread = provider.preload(); thread.join(30)\n"
            "assert 'openai' in sys.modules and provider.preload() is thread\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_the_price_table_is_read_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    reads: list[str] = []
    real = costs.yaml.safe_load

    def counting(text: Any) -> Any:
        reads.append("read")
        return real(text)

    getattr(costs._shipped_table, "cache_clear", lambda: None)()  # a fresh process: nothing read yet
    monkeypatch.setattr(costs.yaml, "safe_load", counting)
    first = costs.load_prices()
    first["gpt-image-2"]["image_output"] = 0.0  # a caller's copy: changing it changes no later table
    assert costs.load_prices()["gpt-image-2"]["image_output"] == 40.0
    assert len(reads) == 1
    override = tmp_path / "prices.yaml"
    override.write_text("my-model: {input: 1.0}\n")
    assert costs.load_prices(override)["my-model"] == {"input": 1.0}
    assert costs.load_prices(override)["my-model"] == {"input": 1.0} and len(reads) == 2
    override.write_text("my-model: {input: 2.5, output: 3}\n")  # edited: read again
    assert costs.load_prices(override)["my-model"] == {"input": 2.5, "output": 3.0} and len(reads) == 3
