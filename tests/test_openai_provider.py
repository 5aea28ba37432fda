"""The OpenAI-compatible provider on its own, over real HTTP to the loopback server: how each failure is
classified for the gate, parameter adaptation, vision inputs, image answers in every form, and the
missing-key message (also through the CLI)."""

from __future__ import annotations

import base64
import io
import json
import sys
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
from PIL import Image
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))

from fake_openai_server import FakeConfig, FakeOpenAI  # noqa: E402

from beamsearch.config import ImageRoleSettings, RoleSettings, VisionRoleSettings  # noqa: E402
from beamsearch.errors import (  # noqa: E402
    AuthError,
    ContentPolicyError,
    FatalCallError,
    InvalidAnswer,
    RetryableError,
    SettingsError,
)
from beamsearch.providers.base import ImageRequest, TextRequest, VisionRequest  # noqa: E402
from beamsearch.providers.openai import build_role, image_format  # noqa: E402
from beamsearch.providers.openai_errors import ErrorMapper, redact, retry_after  # noqa: E402
from beamsearch.schemas import AlignmentAnswer, parse_answer, strict_json_schema  # noqa: E402

KEY_ENV = "FAKE_OPENAI_UNIT_KEY"
KEY = "sk-unit-9f8e7d6c5b4a39281706"


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv(KEY_ENV, KEY)
    with FakeOpenAI(FakeConfig(api_key=KEY)) as fake:
        yield fake


def text_role(server: FakeOpenAI, **extra: Any) -> Any:
    return build_role("text", RoleSettings(**{"base_url": server.url, "api_key_env": KEY_ENV, "timeout": 5.0, **extra}))


def ask(text: str = "The user's idea: a boat", **extra: Any) -> TextRequest:
    return TextRequest(key="i0/c00/expand_what", task="expand_what", system="You write.", user=text, **extra)


async def failure_of(role: Any, request: Any) -> BaseException:
    method = role.generate if isinstance(request, ImageRequest) else role.complete
    with pytest.raises(Exception) as caught:
        await method(request)
    return caught.value


# --- failures, as the gate will see them --------------------------------------------------------


async def test_transient_failures_are_retryable_and_429_pauses_the_service(server: FakeOpenAI) -> None:
    role = text_role(server)
    server.queue_fault("text", "429", "500", "503", "malformed")
    rate = await failure_of(role, ask())
    assert type(rate) is RetryableError and rate.pause_service and rate.retry_after == pytest.approx(0.02)
    for status in ("500", "503"):
        error = await failure_of(role, ask())
        assert type(error) is RetryableError and not error.pause_service and status in error.message
    malformed = await failure_of(role, ask())
    assert isinstance(malformed, InvalidAnswer) and "malformed" in malformed.message
    server.config.retry_after_ms = None
    server.config.retry_after = "2"
    server.queue_fault("text", "429")
    assert (await failure_of(role, ask())).retry_after == pytest.approx(2.0)
    assert (await role.complete(ask())).text == "a boat"  # and the next call simply works
    await role.aclose()


async def test_fatal_failures_end_the_call_with_one_sentence(server: FakeOpenAI) -> None:
    role = text_role(server)
    server.queue_fault("text", "quota", "404", "400")
    quota = await failure_of(role, ask())
    assert type(quota) is FatalCallError and "quota" in quota.message and KEY_ENV in quota.message
    missing = await failure_of(role, ask())
    assert type(missing) is FatalCallError and "404" in missing.message and "gpt-5.4-mini" in missing.message
    bad = await failure_of(role, ask())
    assert type(bad) is FatalCallError and "400" in bad.message
    await role.aclose()


async def test_rejected_key_names_role_and_variable_and_never_the_key(server: FakeOpenAI,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = "sk-wrong-ABCDEFGHIJKLMNOP1234"
    monkeypatch.setenv(KEY_ENV, wrong)
    role = build_role("vision", VisionRoleSettings(base_url=server.url, api_key_env=KEY_ENV))
    error = await failure_of(role, VisionRequest(key="k", task="judge_aesthetic", system="s", user="u", images=()))
    assert isinstance(error, AuthError)
    assert "vision" in error.message and KEY_ENV in error.message and "--provider sim" in error.message
    assert wrong not in error.message and "1234" not in error.message
    await role.aclose()


async def test_timeouts_and_unreachable_servers_are_retryable(server: FakeOpenAI) -> None:
    role = text_role(server, timeout=0.3)
    server.config.timeout_sleep = 1.5
    server.queue_fault("text", "timeout")
    timed_out = await failure_of(role, ask())
    assert type(timed_out) is RetryableError and "timed out" in timed_out.message
    await role.aclose()
    closed = FakeOpenAI().start()
    url = closed.url
    closed.stop()
    gone = build_role("text", RoleSettings(base_url=url, api_key_env=KEY_ENV, timeout=2.0))
    unreachable = await failure_of(gone, ask())
    assert type(unreachable) is RetryableError and "cannot reach" in unreachable.message
    await gone.aclose()


async def test_schema_is_sent_and_a_schema_breaking_answer_is_invalid(server: FakeOpenAI) -> None:
    role = text_role(server)
    schema = strict_json_schema(AlignmentAnswer)
    request = VisionRequest(key="k", task="judge_alignment", system="s", user="u", schema=schema,
                            schema_name="judge_alignment", images=())
    answer = await role.complete(request)
    assert parse_answer(answer.text, AlignmentAnswer).score >= 0
    sent = server.bodies[-1]["response_format"]
    assert sent == {"type": "json_schema", "json_schema": {"name": "judge_alignment", "schema": schema, "strict": True}}
    server.queue_fault("text", "schema")
    broken = await role.complete(request)
    with pytest.raises(InvalidAnswer):
        parse_answer(broken.text, AlignmentAnswer)
    server.queue_fault("text", "schema")  # a plain-text task gets an empty answer instead
    assert isinstance(await failure_of(role, ask()), InvalidAnswer)
    await role.aclose()


def test_error_mapping_of_sdk_exceptions_without_a_server() -> None:
    """A few shapes the loopback server does not produce: bare decode errors, quota by message, 409/408,
    content policy by message, and a key echoed back in a message."""
    mapper = ErrorMapper("image", "gpt-image-2", None, "OPENAI_API_KEY", KEY)
    request = httpx2.Request("POST", "http://127.0.0.1/v1/images/generations")

    def status(code: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
        response = httpx2.Response(code, headers=headers or {}, request=request)
        return openai.AsyncOpenAI(api_key="x", base_url="http://127.0.0.1/v1")._make_status_error(
            "boom", body=body, response=response)

    assert isinstance(mapper.map(json.JSONDecodeError("Expecting value", "{", 1)), InvalidAnswer)
    assert type(mapper.map(status(409, {"error": {"message": "conflict"}}))) is RetryableError
    assert type(mapper.map(status(408, {"error": {"message": "slow"}}))) is RetryableError
    policy = mapper.map(status(400, {"error": {"message": "Your prompt may contain text that is not allowed by our "
                                                          "safety system.", "code": None}}))
    assert isinstance(policy, ContentPolicyError)
    echoed = mapper.map(status(403, {"error": {"message": f"key {KEY} may not use this model"}}))
    assert type(echoed) is FatalCallError and KEY not in echoed.message and "403" in echoed.message
    assert redact("Incorrect API key provided: sk-abc*****wxyz.", None) == "Incorrect API key provided: [redacted]."
    assert retry_after({"retry-after-ms": "250", "retry-after": "9"}) == pytest.approx(0.25)
    assert retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert retry_after({"retry-after": "soon"}) is None


# --- parameters a model refuses -----------------------------------------------------------------


async def test_refused_temperature_is_dropped_and_remembered(server: FakeOpenAI) -> None:
    server.config.reject_temperature = True
    role = text_role(server, temperature=0.9)
    first = await role.complete(ask())
    assert first.meta == {"adapted": ["dropped temperature"]}
    assert server.stats["text"].requests == 2  # refused once, then asked again at once
    second = await role.complete(ask())
    assert second.meta == {} and server.stats["text"].requests == 3
    assert "temperature" in server.bodies[0] and "temperature" not in server.bodies[-1]
    await role.aclose()


async def test_max_tokens_names_are_switched_both_ways(server: FakeOpenAI) -> None:
    server.config.reject_max_completion_tokens = True  # an older server that knows only max_tokens
    role = text_role(server)
    answer = await role.complete(ask())
    assert answer.meta == {"adapted": ["max_completion_tokens -> max_tokens"]}
    assert server.bodies[-1]["max_tokens"] == 1200 and "max_completion_tokens" not in server.bodies[-1]
    server.config.reject_max_tokens = True  # and if it then refuses that as well, the limit is dropped
    dropped = await role.complete(ask())
    assert dropped.meta == {"adapted": ["dropped max_tokens"]}
    assert "max_tokens" not in server.bodies[-1] and "max_completion_tokens" not in server.bodies[-1]
    await role.aclose()


# --- vision -------------------------------------------------------------------------------------


async def test_vision_sends_a_downscaled_data_url_in_the_images_format(server: FakeOpenAI, tmp_path: Path) -> None:
    picture = tmp_path / "big.jpg"
    Image.new("RGB", (300, 200), (200, 30, 30)).save(picture, "JPEG")
    role = build_role("vision", VisionRoleSettings(base_url=server.url, api_key_env=KEY_ENV, vision_max_side=100,
                                                   detail="high"))
    request = VisionRequest(key="k", task="judge_aesthetic", system="Judge.", user="Judge the image.",
                            schema={"type": "object"}, schema_name="judge_aesthetic", images=(picture,))
    answer = await role.judge(request)
    assert 0 <= float(json.loads(answer.text)["score"]) <= 10
    part = server.bodies[-1]["messages"][1]["content"][1]
    assert part["image_url"]["detail"] == "high"
    header, encoded = part["image_url"]["url"].split(",", 1)
    assert header == "data:image/jpeg;base64"
    with Image.open(io.BytesIO(base64.b64decode(encoded))) as sent:
        assert sent.format == "JPEG" and sent.size == (100, 67)
    assert server.images_checked == 1 and server.stats["vision"].requests == 1
    await role.aclose()


# --- images -------------------------------------------------------------------------------------


def image_role(server: FakeOpenAI, **extra: Any) -> Any:
    return build_role("image", ImageRoleSettings(base_url=server.url, api_key_env=KEY_ENV, size="64x64", **extra))


async def test_image_base64_answer_keeps_format_usage_and_revised_prompt(server: FakeOpenAI) -> None:
    server.config.image_format = "webp"
    server.config.revised_prompt = True
    role = image_role(server)
    result = await role.generate(ImageRequest(key="k", prompt="a blue boat"))
    assert result.format == "webp" and image_format(result.data) == "webp"
    assert result.revised_prompt == "A carefully composed picture: a blue boat"
    assert (result.usage.input_tokens, result.usage.image_output_tokens, result.usage.images) == (40, 1056, 1)
    body = server.bodies[-1]
    assert body["model"] == "gpt-image-2" and "response_format" not in body
    assert body["size"] == "64x64" and body["quality"] == "medium"
    await role.aclose()


async def test_image_url_answer_is_downloaded_within_the_size_cap(server: FakeOpenAI) -> None:
    server.config.image_mode = "url"
    server.config.image_format = "jpeg"
    role = image_role(server, model="dall-e-3")
    result = await role.generate(ImageRequest(key="k", prompt="a green boat"))
    assert result.format == "jpeg" and result.data.startswith(b"\xff\xd8\xff")
    assert server.bodies[-1]["response_format"] == "b64_json"  # asked for, but this server sends URLs anyway
    await role.aclose()
    small = image_role(server, model="dall-e-3", max_download_bytes=100)
    too_big = await failure_of(small, ImageRequest(key="k", prompt="a green boat"))
    # the picture was made and paid for: a download that cannot be had ends the step, not a new picture
    assert isinstance(too_big, FatalCallError) and "max_download_bytes" in too_big.message
    assert too_big.usage is not None and too_big.usage.images == 1
    await small.aclose()


async def test_image_refusals_and_broken_images(server: FakeOpenAI) -> None:
    server.config.policy_words = ("gore",)
    role = image_role(server)
    refused = await failure_of(role, ImageRequest(key="k", prompt="a boat covered in gore"))
    assert isinstance(refused, ContentPolicyError) and "safety system" in refused.message
    server.queue_fault("image", "schema")  # 200 with bytes that are no image
    broken = await failure_of(role, ImageRequest(key="k", prompt="a boat"))
    assert isinstance(broken, InvalidAnswer)
    await role.aclose()


# --- the key --------------------------------------------------------------------------------------


def test_missing_key_names_the_variable_and_the_simulator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(SettingsError) as caught:
        build_role("text", RoleSettings(api_key_env=KEY_ENV))
    message = caught.value.message
    assert KEY_ENV in message and "--provider sim" in message and message.count(".") == 1


def test_cli_without_a_key_exits_non_zero_without_a_traceback(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from beamsearch.cli import app

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("BEAMSEARCH_CONFIG", raising=False)
    monkeypatch.delenv("BEAMSEARCH_PROVIDER", raising=False)
    result = CliRunner().invoke(app, ["run", "--prompt", "a boat", "--provider", "openai",
                                      "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 2
    output = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert "OPENAI_API_KEY" in output and "--provider sim" in output
    assert "Traceback" not in output
    assert not (tmp_path / "runs").exists()
