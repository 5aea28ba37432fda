"""A checklist that cannot be made (issue 17): after its retries the run rates alignment instead, says so in
the log (an `alignment_fallback` event), the display and the report, and goes on; a resume follows the
recorded failure (the checklist is not asked again, the lanes are judged as before)."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake_openai_server import FakeConfig, FakeOpenAI  # noqa: E402

from beamsearch.app import resume_run, start_run  # noqa: E402
from beamsearch.display import PlainDisplay  # noqa: E402
from beamsearch.precedence import resolve  # noqa: E402

KEY_ENV = "FAKE_FALLBACK_KEY"
CHECKLIST_PHRASE = "into a checklist"


@pytest.fixture(autouse=True)
def keyed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-fallback-test-key-0001")


def flags_for(server: FakeOpenAI, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    flags: dict[str, Any] = {"prompt": "a red lighthouse in a storm", "n": 3, "m": 1, "iterations": 2,
                             "provider": "openai", "runs_dir": str(tmp_path / "runs"), "alignment": "checklist",
                             "retries.max_attempts": 3, "retries.backoff_initial": 0.01,
                             "retries.backoff_max": 0.02, "image.size": "64x64"}
    for role in ("text", "image", "vision"):
        flags.update({f"{role}.base_url": server.url, f"{role}.api_key_env": KEY_ENV, f"{role}.timeout": 10.0})
    return {**flags, **extra}


def events_in(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines() if line]


def checklist_requests(server: FakeOpenAI) -> int:
    return sum(1 for b in server.bodies if "messages" in b and CHECKLIST_PHRASE in b["messages"][0]["content"])


async def test_a_checklist_that_cannot_be_made_falls_back_to_rating(tmp_path: Path) -> None:
    shown = io.StringIO()
    config = FakeConfig(prompt_faults={CHECKLIST_PHRASE: ["schema"] * 3})  # every attempt breaks its schema
    with FakeOpenAI(config) as server:
        result = await start_run(resolve(None, flags_for(server, tmp_path)), listeners=[PlainDisplay(shown)])
        assert checklist_requests(server) == 3
    assert result.exit_code == 0 and result.status == "done", result.error
    events = events_in(result.store.path)
    assert any(e["type"] == "step_failed" and e["key"] == "run/checklist" for e in events)
    fallback = [e for e in events if e["type"] == "alignment_fallback"]
    assert len(fallback) == 1 and "does not fit its schema" in fallback[0]["reason"]
    tasks = {e["key"].rsplit("/", 1)[-1] for e in events if e["type"] == "step"}
    assert "judge_alignment" in tasks and "judge_checklist" not in tasks
    candidates = {e["id"]: e for e in events if e["type"] == "candidate"}
    assert len(candidates) == 6 and all(c["status"] == "done" for c in candidates.values())
    assert not any(e["type"] == "lane_failed" for e in events)
    # said in the display, the summary, the report and the closing warnings
    assert "warning: the checklist could not be made" in shown.getvalue().lower()
    assert "rated" in result.summary["judging"]["alignment_fallback"]
    assert any("checklist could not be made" in w for w in result.warnings)
    report = (result.store.path / "report.html").read_text()
    assert "The checklist could not be made" in report


async def test_a_resume_follows_the_recorded_fallback(tmp_path: Path) -> None:
    config = FakeConfig(prompt_faults={CHECKLIST_PHRASE: ["schema"] * 3})
    with FakeOpenAI(config) as server:
        first = await start_run(resolve(None, flags_for(server, tmp_path)))
        assert first.exit_code == 0
        judged = sum(s.requests for name, s in server.stats.items() if name == "vision")
        endpoints = {f"{role}.{key}": value for role in ("text", "image", "vision")
                     for key, value in (("base_url", server.url), ("api_key_env", KEY_ENV))}
        again = await resume_run(first.store.path, flags={**endpoints, "iterations": 3})
        assert checklist_requests(server) == 3  # not asked again, though it would now succeed
    assert again.exit_code == 0, again.error
    events = events_in(first.store.path)
    assert len([e for e in events if e["type"] == "alignment_fallback"]) == 1
    new_tasks = [e["key"] for e in events if e["type"] == "step" and e["key"].startswith("i2/")]
    assert any(k.endswith("judge_alignment") for k in new_tasks)
    assert not any(k.endswith("judge_checklist") for k in new_tasks)
    assert server.stats["vision"].requests > judged  # the new iteration was judged, the old one replayed
