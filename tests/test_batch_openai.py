"""Two ideas side by side over real HTTP to the loopback OpenAI-compatible server: the batch's one image
limiter holds the configured rpm across both, as the server counted the requests."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from batchhelp import batch_events, ideas_file  # noqa: E402
from fake_openai_server import FakeConfig, FakeOpenAI  # noqa: E402

from beamsearch.batch import run_batch  # noqa: E402
from beamsearch.batch_open import open_new_batch  # noqa: E402
from beamsearch.limits import rate_window  # noqa: E402
from beamsearch.precedence import resolve  # noqa: E402

KEY_ENV = "FAKE_OPENAI_BATCH_KEY"
KEY = "sk-test-Bt7RkY2mPw9vXc4nLb8tHj3dFs6gAe1u"
RPM, WINDOW = 120.0, 1.0  # 2 image requests may start in any 1 s


@pytest.fixture
def server() -> Any:
    with FakeOpenAI(FakeConfig(api_key=KEY, latency={"text": 0.0, "image": 0.05, "vision": 0.0})) as fake:
        yield fake


def settings_for(server: FakeOpenAI, tmp_path: Path) -> Any:
    flags: dict[str, Any] = {"n": 3, "m": 1, "iterations": 2, "provider": "openai", "runs_dir": str(tmp_path / "runs"),
                             "image.size": "64x64", "limits.window_s": WINDOW, "limits.image.rpm": RPM,
                             "limits.image.concurrency": 8, "retries.backoff_initial": 0.01}
    for role in ("text", "image", "vision"):
        flags[f"{role}.base_url"] = server.url
        flags[f"{role}.api_key_env"] = KEY_ENV
    return resolve(None, flags, environ={})


async def test_two_ideas_side_by_side_never_pass_the_shared_image_rpm(server: FakeOpenAI, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    ideas = ideas_file(tmp_path, ["a red lighthouse on a rocky coast", "a white boat on a blue lake"])
    result = await run_batch(open_new_batch(ideas, settings_for(server, tmp_path), 2))
    assert result.exit_code == 0, result.summary
    assert result.summary["counts"]["done"] == 2

    events = batch_events(result.path)
    started = {e["idea"]: e["ts"] for e in events if e["type"] == "idea_started"}
    finished = {e["idea"]: e["ts"] for e in events if e["type"] == "idea_finished"}
    assert max(started.values()) < min(finished.values())  # the two ideas really ran side by side

    starts = sorted(server.stats["image"].starts)
    assert len(starts) == 2 * 3 * 2  # every image of both ideas, each asked once
    allowed, period = rate_window(RPM, WINDOW)
    # allowed + 1 requests never arrived within one period (up to the client->server hop; see
    # test_openai_search: half a period of allowance). Two limiters of their own would let 2 * allowed
    # requests through at once, and the tightest span of allowed + 1 would be ~0 s.
    spans = [starts[i + allowed] - starts[i] for i in range(len(starts) - allowed)]
    assert min(spans) > period / 2, (min(spans), period)
    # and over the whole batch: no more than the rate allows from the first request to the last
    assert len(starts) <= allowed * ((starts[-1] - starts[0] + 0.5) / period + 1)
    # the key was used, and written nowhere in the batch folder (batch.yaml holds the variable's name only)
    files = [p for p in result.path.rglob("*") if p.is_file()]
    assert len(files) > 10 and not [p for p in files if KEY.encode() in p.read_bytes()]
    assert KEY_ENV in (result.path / "batch.yaml").read_text()
