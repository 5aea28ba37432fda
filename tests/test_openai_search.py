"""Whole runs of the real app against the loopback OpenAI-compatible server: real HTTP, real SDK, real
limits. Checks completion under faults, the limits as the server saw them, content-policy recovery,
the budget stop, where the key may (never) appear, and the missing-key and bad-key messages."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake_openai_server import FakeConfig, FakeOpenAI  # noqa: E402

from beamsearch.app import start_run  # noqa: E402
from beamsearch.costs import load_prices, typical_cost  # noqa: E402
from beamsearch.errors import SettingsError  # noqa: E402
from beamsearch.limits import rate_window
from beamsearch.precedence import resolve  # noqa: E402

KEY_ENV = "FAKE_OPENAI_TEST_KEY"
KEY = "sk-test-Zq7RkY2mPw9vXc4nLb8tHj3dFs6gAe1u"
IDEA = "a red lighthouse on a rocky coast in a storm"


@pytest.fixture
def server() -> Any:
    with FakeOpenAI(FakeConfig(api_key=KEY)) as fake:
        yield fake


@pytest.fixture
def keyed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)


def flags_for(server: FakeOpenAI, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    flags: dict[str, Any] = {
        "prompt": IDEA, "n": 4, "m": 2, "iterations": 2, "provider": "openai", "runs_dir": str(tmp_path / "runs"),
        "retries.backoff_initial": 0.01, "retries.backoff_max": 0.05, "retries.max_attempts": 6,
        "image.size": "64x64",
    }
    for role in ("text", "image", "vision"):
        flags[f"{role}.base_url"] = server.url
        flags[f"{role}.api_key_env"] = KEY_ENV
        flags[f"{role}.timeout"] = 10.0
    flags.update(extra)
    return flags


def events_of(result: Any) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (result.store.path / "events.jsonl").read_text().splitlines() if line]


rate_guarantee = rate_window  # what ServiceLimiter promises: at most `allowed` starts in any `period` seconds


def tightest_span(starts: list[float], allowed: int) -> float | None:
    """The shortest time in which `allowed + 1` requests arrived (None if there never were that many)."""
    ordered = sorted(starts)
    spans = [ordered[i + allowed] - ordered[i] for i in range(len(ordered) - allowed)]
    return min(spans) if spans else None


async def test_small_search_completes_against_the_server(server: FakeOpenAI, keyed: None, tmp_path: Path) -> None:
    settings = resolve(None, flags_for(server, tmp_path))
    result = await start_run(settings)
    assert result.exit_code == 0, result.error
    assert result.status == "done"
    events = events_of(result)
    candidates = [e for e in events if e["type"] == "candidate"]  # kept parents judged again are logged again
    assert len({c["id"] for c in candidates}) == 8 and all(c["status"] == "done" for c in candidates)
    assert [e["iteration"] for e in events if e["type"] == "ranking"] == [0, 1]
    steps = [e for e in events if e["type"] == "step"]
    assert {e["service"] for e in steps} == {"text", "image", "vision"}
    judged = [e for e in steps if e["service"] == "vision"]
    # 2 judges per image, 2 more for each of the 2 kept parents, and the final check of up to 2 survivors
    assert server.stats["image"].answered == 8 and server.stats["vision"].answered == len(judged)
    assert 16 + 4 <= len(judged) <= 16 + 4 + 4
    assert server.images_checked == len(judged)  # every judge request carried a real, decodable image
    images = list((result.store.path / "images").iterdir())
    assert len(images) == 8 and all(p.read_bytes().startswith(b"\x89PNG") for p in images)
    # costs come from the built-in price table by model name
    image_step = next(e for e in steps if e["service"] == "image")
    assert image_step["usage"] == {"model": "gpt-image-2", "input_tokens": 40, "image_output_tokens": 1056, "images": 1}
    assert image_step["cost"] == pytest.approx(40 * 5.0 / 1e6 + 1056 * 40.0 / 1e6)
    assert result.summary["cost_usd"] == pytest.approx(sum(e["cost"] for e in steps), abs=1e-5)
    assert result.summary["usage"]["image"]["cost_usd"] == pytest.approx(8 * image_step["cost"], abs=1e-5)
    # the default text model gets a schema in response_format for structured tasks, and no
    # response_format is ever sent to a gpt-image model
    judged = [b for b in server.bodies if b.get("response_format")]
    assert {b["response_format"]["json_schema"]["name"] for b in judged} == {"judge_alignment", "judge_aesthetic", "critique"}
    assert all(b["response_format"]["json_schema"]["strict"] is True for b in judged)
    assert not any("response_format" in b for b in server.bodies if "prompt" in b)


async def test_faults_are_retried_within_bounds_and_limits_hold(server: FakeOpenAI, keyed: None, tmp_path: Path) -> None:
    """About 20% of requests fail (429 with Retry-After, 500, 503, malformed body, schema-invalid answer);
    every lane is still judged, no step took more than max_attempts, and the server never saw more
    requests in flight, or more starts per window, than the limits allow."""
    server.config.fail_every = 5
    server.config.latency = {"text": 0.02, "image": 0.05, "vision": 0.03}
    limits = {"text": (3, 450.0), "image": (2, 300.0), "vision": (3, 450.0)}  # 6, 4 and 6 starts per 0.8 s
    window = 0.8
    extra: dict[str, Any] = {"limits.window_s": window}
    for service, (concurrency, rpm) in limits.items():
        extra[f"limits.{service}.concurrency"] = concurrency
        extra[f"limits.{service}.rpm"] = rpm
    failures: list[dict[str, Any]] = []
    settings = resolve(None, flags_for(server, tmp_path, **extra))
    result = await start_run(settings, listeners=[lambda e: failures.append(e.data()) if e.type == "attempt_failed" else None])

    assert result.exit_code == 0, result.error
    events = events_of(result)
    candidates = [e for e in events if e["type"] == "candidate"]
    assert len({c["id"] for c in candidates}) == 8 and all(c["status"] == "done" for c in candidates)
    assert all(c["alignment"] > 0 and c["aesthetic"] > 0 for c in candidates)
    assert not [e for e in events if e["type"] == "lane_failed"]

    injected = server.total_faults()
    total = server.total_requests()
    assert injected >= 0.15 * total  # the fault rate really was about 20%
    kinds = Counter_of(server)
    assert {"429", "500", "503", "malformed", "schema"} <= set(kinds)
    assert len(failures) == injected  # every fault was seen by the gate as one failed attempt
    assert not any(f["final"] for f in failures)
    steps = [e for e in events if e["type"] == "step"]
    assert max(e["attempts"] for e in steps) <= settings.retries.max_attempts
    assert sum(e["attempts"] - 1 for e in steps) == injected
    assert total == len(steps) + injected  # no request went unaccounted for

    for service, (concurrency, rpm) in limits.items():
        stats = server.stats[service]
        assert 1 <= stats.max_in_flight <= concurrency, service
        allowed, period = rate_guarantee(rpm, window)
        span = tightest_span(stats.starts, allowed)
        assert span is not None, f"{service}: too few requests to test the rate"
        # allowed+1 starts never fit in one period (the limiter's promise, ServiceLimiter), as seen by the
        # server up to the varying client->server hop: ~40 ms on an idle machine, ~200 ms with the two
        # cores busy elsewhere, hence half a period of allowance. Without the rate limit the tightest
        # span measured 0.09-0.23 s, so this still catches a missing limit.
        assert span > period / 2, (service, span, period)
        # and over the whole run, where the hop matters only at the two ends
        starts = sorted(stats.starts)
        assert len(starts) <= allowed * ((starts[-1] - starts[0] + 0.5) / period + 1), service
        # the same promise, exactly, on the client's own clock: the start times the limiter let through
        assert result.gate is not None
        client = result.gate.limiters[service].starts
        assert len(client) == stats.requests, service  # every request the server saw went through the limiter
        assert client == sorted(client)
        assert all(client[i + allowed] - client[i] >= period - 1e-6 for i in range(len(client) - allowed)), service
    assert server.stats["text"].max_in_flight == 3  # the cap was reached, so it was the cap that held


async def test_answers_without_usage_are_billed_at_the_typical_cost(server: FakeOpenAI, keyed: None,
                                                                   tmp_path: Path) -> None:
    """Some compatible servers send no usage block: such a call costs the budget's typical estimate for its
    service and model (never $0, which would let a budget be overrun), and the step says it was estimated."""
    server.config.omit_usage = True
    settings = resolve(None, flags_for(server, tmp_path, n=2, m=1, iterations=1))
    result = await start_run(settings)
    assert result.exit_code == 0, result.error
    steps = [e for e in events_of(result) if e["type"] == "step"]
    assert {e["service"] for e in steps} == {"text", "image", "vision"}
    prices = load_prices(None)
    for step in steps:
        typical = typical_cost(step["service"], getattr(settings, step["service"]).model, prices)
        assert typical > 0
        assert step["cost"] == pytest.approx(typical), step["key"]
        assert step["meta"]["usage_estimated"] is True, step["key"]
    assert result.summary["cost_usd"] == pytest.approx(sum(e["cost"] for e in steps), abs=1e-5)


def Counter_of(server: FakeOpenAI) -> dict[str, int]:
    kinds: dict[str, int] = {}
    for stats in server.stats.values():
        for kind, count in stats.faults.items():
            kinds[kind] = kinds.get(kind, 0) + count
    return kinds


async def test_content_policy_refusal_is_rephrased_and_the_lane_finishes(server: FakeOpenAI, keyed: None,
                                                                         tmp_path: Path) -> None:
    server.config.policy_words = ("gore",)
    server.config.revised_prompt = True
    settings = resolve(None, flags_for(server, tmp_path, prompt="a lighthouse covered in gore", n=2, m=1))
    result = await start_run(settings)
    assert result.exit_code == 0, result.error
    events = events_of(result)
    steps = {e["key"]: e for e in events if e["type"] == "step"}
    assert "rejected" in steps["i0/c00/image"]["result"]
    assert "gore" not in steps["i0/c00/rephrase.r1"]["result"]["text"]
    assert "path" in steps["i0/c00/image.r1"]["result"]
    assert server.stats["image"].faults["policy"] >= 2
    candidates = [e for e in events if e["type"] == "candidate"]
    assert candidates and all(c["status"] == "done" and c["rephrases"] for c in candidates)
    assert all("gore" not in c["prompt"] for c in candidates)
    # the provider's revised prompt is kept with the image
    assert all(c["revised_prompt"].startswith("A carefully composed picture") for c in candidates)


async def test_budget_stop_exits_3_and_overspends_by_at_most_the_calls_in_flight(
        server: FakeOpenAI, keyed: None, tmp_path: Path) -> None:
    server.config.image_usage = {"text": 60, "image_out": 1400}  # dearer than the gate's estimate
    budget = 0.12
    settings = resolve(None, flags_for(server, tmp_path, max_cost_usd=budget))
    result = await start_run(settings)
    assert result.exit_code == 3
    assert result.status == "stopped"
    assert type(result.error).__name__ == "BudgetExhausted"
    events = events_of(result)
    finished = events[-1]
    assert finished["type"] == "run_finished" and finished["status"] == "stopped"
    steps = [e for e in events if e["type"] == "step"]
    spent = sum(e["cost"] for e in steps)
    assert finished["cost_usd"] == pytest.approx(spent, abs=1e-6)
    # over the budget by at most what the calls already in flight could add beyond their estimates
    prices = load_prices(None)
    slack = 0.0
    for service in ("text", "image", "vision"):
        costs = [e["cost"] for e in steps if e["service"] == service]
        cap = getattr(settings.limits, service).concurrency
        estimate = typical_cost(service, getattr(settings, service).model, prices)
        slack += cap * max([c - estimate for c in costs] + [0.0])
    assert spent <= budget + slack
    assert spent > budget * 0.5  # it really spent up to the budget before stopping
    assert not [e for e in events if e["type"] == "lane_failed"]


async def test_key_never_reaches_the_run_folder(server: FakeOpenAI, keyed: None, tmp_path: Path) -> None:
    server.config.fail_every = 4
    server.config.fault_cycle = ("429", "500", "malformed", "schema")
    settings = resolve(None, flags_for(server, tmp_path, n=2, m=1))
    result = await start_run(settings)
    assert result.exit_code == 0, result.error
    files = [p for p in result.store.path.rglob("*") if p.is_file()]
    assert len(files) >= 5
    for path in files:
        data = path.read_bytes()
        assert KEY.encode() not in data, path
        assert KEY[-12:].encode() not in data, path
    assert KEY_ENV in (result.store.path / "run.yaml").read_text()  # the variable's name is fine


async def test_rejected_key_ends_the_run_naming_role_and_variable(server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch,
                                                                  tmp_path: Path) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-wrong-key-0123456789abcdef")
    settings = resolve(None, flags_for(server, tmp_path, n=2, m=1))
    result = await start_run(settings)
    assert result.exit_code == 1 and result.status == "failed"
    message = result.error.message
    assert KEY_ENV in message and "401" in message and message.count(". ") == 0
    assert message.split()[1] == "text"  # "The text service ... rejected the API key ..."
    assert server.stats["text"].faults["401"] >= 1
    assert server.stats["image"].requests == 0  # nothing else was tried once the key was refused
    for path in result.store.path.rglob("*"):
        if path.is_file():
            assert b"0123456789abcdef" not in path.read_bytes()
            assert b"sk-wrong" not in path.read_bytes()


async def test_missing_key_is_one_sentence_and_makes_no_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    settings = resolve(None, {"prompt": IDEA, "runs_dir": str(tmp_path / "runs"), "provider": "openai",
                              "image.api_key_env": KEY_ENV, "text.provider": "sim", "vision.provider": "sim"})
    with pytest.raises(SettingsError) as caught:
        await start_run(settings)
    message = caught.value.message
    assert KEY_ENV in message and "--provider sim" in message and "image" in message
    assert not (tmp_path / "runs").exists()
