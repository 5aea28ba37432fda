"""Issue 14, findings 8 and 10: redaction before truncation, of the exact keys in use and of key-like
patterns; bounded answers (base64 and downloads capped, pixels capped before decoding), image URLs only
over https or from the endpoint's own host, no redirect to another host, errors naming the host, and a
failed download that does not pay for a new picture."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from simhelp import read_events, sim_settings
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))

from fake_openai_server import FakeConfig, FakeOpenAI  # noqa: E402

from beamsearch.app import start_run  # noqa: E402
from beamsearch.cli import app  # noqa: E402
from beamsearch.config import ImageRoleSettings  # noqa: E402
from beamsearch.errors import CallError, FatalCallError  # noqa: E402
from beamsearch.precedence import resolve  # noqa: E402
from beamsearch.providers.base import ImageRequest  # noqa: E402
from beamsearch.providers.openai import build_role  # noqa: E402

KEY_ENV = "FAKE_ANSWERS_TEST_KEY"
KEY = "Zq7RkY2mPw9vXc4nLb8tHj3dFs6gAe1uQ0oPx"  # 37 characters, not shaped like sk-...


def pieces_of(secret: str, size: int = 8) -> list[str]:
    return [secret[i:i + size] for i in range(len(secret) - size + 1)]


def test_a_key_straddling_the_cut_of_an_error_never_reaches_any_output(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    with FakeOpenAI(FakeConfig(api_key=KEY)) as server:
        server.queue_fault("image", *["echo_key"] * 3)  # one lane fails both attempts
        config = tmp_path / "c.yaml"
        config.write_text("provider: openai\nimage: {size: 64x64}\nretries: {max_attempts: 2, backoff_initial: 0, "
                          "backoff_max: 0}\n" + "".join(f"{role}: {{base_url: '{server.url}', api_key_env: {KEY_ENV}}}\n"
                                                      for role in ("text", "image", "vision")))
        result = CliRunner().invoke(app, ["run", "-p", "a red kite", "-n", "2", "-m", "1", "-i", "1", "--config",
                                          str(config), "--runs-dir", str(tmp_path / "runs")], env={KEY_ENV: KEY})
    assert result.exit_code == 0, result.output
    run = next((tmp_path / "runs").iterdir())
    failures = [e for e in read_events(run) if e["type"] == "step_failed"]
    assert failures and "(credential [reda" in failures[0]["error"]  # redacted, then cut
    texts = [result.stdout, result.stderr] + [(run / name).read_text() for name in
                                              ("events.jsonl", "summary.json", "report.html")]
    for text in texts:
        assert not any(piece in text for piece in pieces_of(KEY)), text[:200]


def test_redaction_covers_every_key_in_use_and_key_like_tokens() -> None:
    from beamsearch.providers.openai_errors import ErrorMapper, redact

    ErrorMapper("text", "m", None, "A_KEY", "first-secret-value-one")
    ErrorMapper("image", "m", None, "B_KEY", "second-secret-value-two")
    text = redact("a first-secret-value-one and second-secret-value-two, Bearer abc.def, token 9f8e7d6c5b4a39281706f5e4d3c2b1a0")
    assert "secret-value" not in text and "abc.def" not in text and "9f8e7d6c" not in text
    assert redact("model gpt-5.4-mini at http://127.0.0.1:8000/v1 (429)") == "model gpt-5.4-mini at http://127.0.0.1:8000/v1 (429)"


# --- bounded answers --------------------------------------------------------------------------------


def image_role(server: FakeOpenAI, **extra: Any):
    return build_role("image", ImageRoleSettings(base_url=server.url, api_key_env=KEY_ENV, size="64x64",
                                                 model="dall-e-3", **extra))


async def failure(role, prompt: str = "a green boat") -> CallError:
    with pytest.raises(CallError) as caught:
        await role.generate(ImageRequest(key="k", prompt=prompt))
    await role.aclose()
    return caught.value


@pytest.fixture
def keyed(monkeypatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)


async def test_an_oversized_base64_answer_is_cut_off_and_names_the_host(keyed) -> None:
    with FakeOpenAI(FakeConfig(image_padding=3_000_000)) as server:
        port = server.port
        error = await failure(image_role(server, max_download_bytes=200_000))
    assert isinstance(error, FatalCallError)
    assert f"127.0.0.1:{port}" in error.message and "larger than" in error.message
    assert error.usage is not None  # the answer came: it is billed, as a typical call


async def test_an_image_url_on_another_host_over_http_is_not_fetched(keyed) -> None:
    with FakeOpenAI(FakeConfig()) as other, FakeOpenAI(FakeConfig(image_mode="url")) as server:
        server.config.image_url_base = f"http://127.0.0.1:{other.port}"
        port = other.port
        error = await failure(image_role(server))
    assert isinstance(error, FatalCallError) and f"127.0.0.1:{port}" in error.message and "https" in error.message
    assert other.gets == [] and server.stats["image"].requests == 1
    assert error.usage is not None and error.usage.images == 1  # the picture was made: its cost counts


async def test_a_redirect_to_another_host_is_not_followed(keyed) -> None:
    with FakeOpenAI(FakeConfig()) as other, FakeOpenAI(FakeConfig(image_mode="url")) as server:
        server.config.redirect_files_to = f"http://127.0.0.1:{other.port}"
        port = other.port
        error = await failure(image_role(server))
    assert isinstance(error, FatalCallError) and "redirected to another host" in error.message, error.message
    assert f"127.0.0.1:{port}" in error.message and other.gets == [] and len(server.gets) == 1


def test_https_urls_are_allowed_and_http_only_from_the_endpoint_host() -> None:
    from beamsearch.providers.bounded import _allowed

    assert _allowed("https://cdn.example.com/x.png", None) is None
    assert _allowed("http://127.0.0.1:8000/files/x.png", "http://127.0.0.1:8000/v1") is None
    assert "cdn.example.com" in _allowed("http://cdn.example.com/x.png", "http://127.0.0.1:8000/v1")
    assert _allowed("http://127.0.0.1:9000/x.png", "http://127.0.0.1:8000/v1") is not None
    assert _allowed("file:///etc/passwd", None) is not None


async def test_a_failed_download_is_tried_again_in_place_and_does_not_pay_for_a_new_picture(tmp_path, keyed) -> None:
    with FakeOpenAI(FakeConfig(image_mode="url", files_status=503)) as server:
        flags = {"prompt": "a red kite", "n": 1, "m": 1, "iterations": 1, "provider": "openai", "image.size": "64x64",
                 "image.model": "dall-e-3", "runs_dir": str(tmp_path / "runs"), "retries.backoff_initial": 0,
                 "retries.backoff_max": 0, "prices": str(tmp_path / "p.yaml")}
        (tmp_path / "p.yaml").write_text("dall-e-3: {per_image: 0.04}\n")
        for role in ("text", "image", "vision"):
            flags[f"{role}.base_url"], flags[f"{role}.api_key_env"] = server.url, KEY_ENV
        port = server.port
        result = await start_run(resolve(None, flags, environ={}))
    assert result.status == "failed"
    assert server.stats["image"].requests == 1 and len(server.gets) == 3  # one picture, three tries to fetch it
    events = read_events(result.store.path)
    failed = [e for e in events if e["type"] == "step_failed" and e["service"] == "image"]
    assert failed and f"127.0.0.1:{port}" in failed[0]["error"] and "503" in failed[0]["error"]
    assert [e["cost"] for e in events if e["type"] == "attempt_failed"] == [0.04]
    assert result.summary["cost_usd"] >= 0.04


async def test_a_picture_over_max_pixels_is_refused_from_its_header(tmp_path) -> None:
    settings = sim_settings(tmp_path, n=2, m=1, iterations=1, **{"image.max_pixels": 10_000, "sim.image_size": 256,
                                                                  "retries.max_attempts": 2,
                                                                  "retries.backoff_initial": 0})
    result = await start_run(settings)
    assert result.status == "failed" and "image.max_pixels" in result.error.message
    refusals = [e for e in read_events(result.store.path) if e["type"] == "attempt_failed"]
    assert len(refusals) == 4 and all("256x256" in e["error"] for e in refusals)


def test_the_caps_are_settings_with_safe_defaults() -> None:
    settings = resolve(None, {}, environ={})
    assert settings.image.max_download_bytes == 50_000_000 and settings.image.max_pixels == 4096 * 4096
