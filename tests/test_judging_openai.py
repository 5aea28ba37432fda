"""The judging methods (issue 7) over the loopback OpenAI-compatible server: real HTTP, real SDK, the
nested strict schemas in `response_format`, two images per pairwise request, and retried bad answers."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake_openai_server import FakeConfig, FakeOpenAI  # noqa: E402

from beamsearch.app import start_run  # noqa: E402
from beamsearch.estimate import plan_calls  # noqa: E402
from beamsearch.precedence import resolve  # noqa: E402

KEY_ENV = "FAKE_OPENAI_JUDGING_KEY"
KEY = "sk-test-judging-0123456789abcdef"
IDEA = "a red lighthouse by the sea at night"


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv(KEY_ENV, KEY)
    with FakeOpenAI(FakeConfig(api_key=KEY)) as fake:
        yield fake


def settings_for(server: FakeOpenAI, tmp_path: Path, **extra: Any) -> Any:
    flags: dict[str, Any] = {
        "prompt": IDEA, "n": 4, "m": 2, "iterations": 2, "provider": "openai", "runs_dir": str(tmp_path / "runs"),
        "retries.backoff_initial": 0.01, "retries.backoff_max": 0.05, "image.size": "64x64",
    }
    for role in ("text", "image", "vision"):
        flags[f"{role}.base_url"] = server.url
        flags[f"{role}.api_key_env"] = KEY_ENV
        flags[f"{role}.timeout"] = 10.0
    flags.update(extra)
    return resolve(None, flags, environ={})


def events_of(result: Any) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (result.store.path / "events.jsonl").read_text().splitlines() if line]


def tasks_of(events: list[dict[str, Any]]) -> Counter[str]:
    """Steps of the lanes by task (judgings of kept parents and the final check are counted apart)."""
    return Counter(e["key"].split("/")[-1].split(".")[0] for e in events
                   if e["type"] == "step" and not e["key"].split("/")[1].startswith("keep-"))


def schema_named(server: FakeOpenAI, name: str) -> list[dict[str, Any]]:
    return [b for b in server.bodies if (b.get("response_format") or {}).get("json_schema", {}).get("name") == name]


async def test_checklist_mode_over_http(server: FakeOpenAI, tmp_path: Path) -> None:
    result = await start_run(settings_for(server, tmp_path, alignment="checklist"))
    assert result.status == "done", result.error
    events = events_of(result)
    tasks = tasks_of(events)
    assert tasks["checklist"] == 1 and tasks["judge_checklist"] == 8 and "judge_alignment" not in tasks
    checklist = json.loads((result.store.path / "checklist.json").read_text())["questions"]
    assert [q["id"] for q in checklist] == ["q1", "q2", "q3", "q4"]
    # the checklist request carried the nested strict schema; each judge request listed every question
    (request,) = schema_named(server, "checklist")
    items = request["response_format"]["json_schema"]["schema"]["properties"]["questions"]["items"]
    assert items["additionalProperties"] is False and "depends_on" in items["required"]
    for body in schema_named(server, "judge_checklist"):
        text = json.dumps(body["messages"])
        assert all(f"{q['id']}: {q['question']}" in text for q in checklist)
    for c in (e for e in events if e["type"] == "candidate"):
        if not c["checks"]["q1"]:  # no lighthouse: its colour and the whole picture cannot count
            assert not c["checks"]["q2"] and not c["checks"]["q4"]
    assert result.summary["judging"]["checklist_failed_share"] is not None


async def test_pairwise_mode_over_http_sends_two_images_in_both_orders(server: FakeOpenAI, tmp_path: Path) -> None:
    settings = settings_for(server, tmp_path, ranking="pairwise")
    result = await start_run(settings)
    assert result.status == "done", result.error
    events = events_of(result)
    pair_steps = [e for e in events if e["type"] == "step" and e["key"].endswith("/judge_pairwise")]
    bodies = schema_named(server, "judge_pairwise")
    assert len(bodies) == len(pair_steps) > 0
    for body in bodies:
        images = [p for m in body["messages"] if isinstance(m.get("content"), list) for p in m["content"]
                  if p.get("type") == "image_url"]
        assert len(images) == 2
    keys = {e["key"] for e in pair_steps}
    for key in keys:
        iteration, pair, _ = key.split("/")
        a, b = pair.removeprefix("pair-").split("-")
        assert f"{iteration}/pair-{b}-{a}/judge_pairwise" in keys, "each pair is judged in both orders"
    plan = plan_calls(settings)
    made = len(pair_steps)
    assert plan.by_task(fewest=True)["judge_pairwise"] <= made <= plan.by_task()["judge_pairwise"]
    figures = result.summary["judging"]["pairwise"]
    assert figures["pairs"] == made // 2 and 0 <= figures["agreement"] <= 1


async def test_repeated_judging_and_bad_answers_over_http(server: FakeOpenAI, tmp_path: Path) -> None:
    server.queue_fault("vision", "schema", "malformed")  # answers that do not fit are retried, never used
    result = await start_run(settings_for(server, tmp_path, judge_samples=2, alignment="checklist", iterations=1))
    assert result.status == "done", result.error
    events = events_of(result)
    tasks = tasks_of(events)
    assert tasks["judge_checklist"] == 8 and tasks["judge_aesthetic"] == 8
    vision = [e for e in events if e["type"] == "step" and e["service"] == "vision"]
    assert sum(e["attempts"] for e in vision) == len(vision) + 2  # the two bad answers were retried
    for c in (e for e in events if e["type"] == "candidate"):
        assert len(c["judge_samples"]["aesthetic"]) == 2 and "aesthetic" in c["judge_spread"]
