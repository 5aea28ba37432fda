"""Answer lengths over real HTTP (issue 17): each task sends its own token limit; an answer cut off by the
length limit (finish_reason "length") with nothing usable is retried with the reason, a usable one is
trimmed by rule and marked in the step's meta, a cut JSON answer is retried with more tokens, and a
reasoning model's thinking room is learned once per role."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake_openai_server import FakeConfig, FakeOpenAI  # noqa: E402

from beamsearch.app import start_run  # noqa: E402
from beamsearch.config import RoleSettings  # noqa: E402
from beamsearch.errors import AnswerCutOff  # noqa: E402
from beamsearch.lengths import TOKEN_DEFAULTS  # noqa: E402
from beamsearch.precedence import resolve  # noqa: E402
from beamsearch.providers.base import TextRequest  # noqa: E402
from beamsearch.providers.openai import build_role  # noqa: E402

KEY_ENV = "FAKE_LENGTHS_KEY"
IDEA = "a red lighthouse on a rocky coast in a storm"
WHAT_PHRASE = "You write the WHAT half"
CRITIQUE_PHRASE = "You review one candidate"


@pytest.fixture(autouse=True)
def keyed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-lengths-test-key-0001")


def flags_for(server: FakeOpenAI, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    flags: dict[str, Any] = {"prompt": IDEA, "n": 2, "m": 1, "iterations": 2, "provider": "openai",
                             "runs_dir": str(tmp_path / "runs"), "retries.backoff_initial": 0.01,
                             "retries.backoff_max": 0.02, "image.size": "64x64", "variants": None}
    for role in ("text", "image", "vision"):
        flags.update({f"{role}.base_url": server.url, f"{role}.api_key_env": KEY_ENV, f"{role}.timeout": 10.0})
    return {**flags, **extra}


def events_of(result: Any) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (result.store.path / "events.jsonl").read_text().splitlines() if line]


def sent_limits(server: FakeOpenAI, phrase: str) -> list[int]:
    return [b["max_completion_tokens"] for b in server.bodies
            if "messages" in b and phrase in b["messages"][0]["content"]]


async def test_each_task_sends_its_own_token_limit(tmp_path: Path) -> None:
    with FakeOpenAI() as server:
        settings = resolve(None, flags_for(server, tmp_path, **{"text.max_output_tokens": {"combine": 333}}))
        result = await start_run(settings)
    assert result.exit_code == 0, result.error
    assert set(sent_limits(server, WHAT_PHRASE)) == {TOKEN_DEFAULTS["expand"]}
    assert set(sent_limits(server, "You merge a content description")) == {333}
    assert set(sent_limits(server, CRITIQUE_PHRASE)) == {TOKEN_DEFAULTS["critique"]}
    assert set(sent_limits(server, "strict judge of how faithfully")) == {TOKEN_DEFAULTS["judge_alignment"]}


async def test_a_cut_answer_is_retried_and_a_usable_one_trimmed(tmp_path: Path) -> None:
    config = FakeConfig(prompt_faults={WHAT_PHRASE: ["length_junk", "length_usable"]})
    with FakeOpenAI(config) as server:
        result = await start_run(resolve(None, flags_for(server, tmp_path)))
    assert result.exit_code == 0, result.error
    events = events_of(result)
    cut = [e for e in events if e["type"] == "attempt_failed" and e["key"].endswith("expand_what")]
    assert len(cut) == 1 and "cut off at the length limit" in cut[0]["error"] and cut[0]["cost"] > 0
    steps = {e["key"]: e for e in events if e["type"] == "step" and e["key"].endswith("/expand_what")}
    assert sorted(s["attempts"] for s in steps.values()) == [1, 2]
    trimmed = [s for s in steps.values() if "trimmed" in s["meta"]]
    assert len(trimmed) == 1 and trimmed[0]["meta"]["finish_reason"] == "length"
    assert trimmed[0]["result"]["text"] == "A red lighthouse stands on a black cliff. Waves break white below it."
    assert trimmed[0]["meta"]["trimmed"] == {"words": 113, "kept": 13}
    assert len(sent_limits(server, WHAT_PHRASE)) == 3  # two lanes, one retry
    # what the lanes went on with is the trimmed text, never the run-on answer
    assert all("The sea The sea" not in e.get("what", "") for e in events if e["type"] == "candidate")


async def test_a_cut_json_answer_is_retried_with_more_tokens(tmp_path: Path) -> None:
    config = FakeConfig(prompt_faults={CRITIQUE_PHRASE: ["length_usable"]})
    with FakeOpenAI(config) as server:
        result = await start_run(resolve(None, flags_for(server, tmp_path)))
    assert result.exit_code == 0, result.error
    failed = [e for e in events_of(result) if e["type"] == "attempt_failed" and e["key"].endswith("critique")]
    assert len(failed) == 1 and "before its JSON ended" in failed[0]["error"]
    base = TOKEN_DEFAULTS["critique"]
    assert sent_limits(server, CRITIQUE_PHRASE) == [base, 2 * base]


async def test_a_reasoning_model_gets_room_to_think_learned_once() -> None:
    with FakeOpenAI(FakeConfig(reasoning_tokens=300)) as server:
        role = build_role("text", RoleSettings(base_url=server.url, api_key_env=KEY_ENV))
        ask = TextRequest(key="k", task="expand_what", system="You write.", user="The idea: a boat",
                          max_output_tokens=200)
        with pytest.raises(AnswerCutOff, match="before any text"):
            await role.complete(ask)  # it thought for all 200 tokens and said nothing: room 300 learned
        answer = await role.complete(TextRequest(**{**ask.__dict__, "max_output_tokens": 400}))  # the step's retry
        assert answer.text and answer.meta["reasoning_tokens"] == 300
        again = await role.complete(ask)  # the room it needs is now known: 200 tokens of answer + 450
        await role.aclose()
    assert again.text and [b["max_completion_tokens"] for b in server.bodies] == [200, 400 + 300, 200 + 450]
