"""Bounded judge schemas (issue 13 item 4, issue 17): every score is sent with its `minimum`/`maximum`,
lists and strings with the bounds a grammar-constrained server enforces, and a server that refuses a
keyword gets the schema without it, learned once per model, while every answer is still validated."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import openai
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake_openai_server import FakeConfig, FakeOpenAI  # noqa: E402

from beamsearch.app import start_run  # noqa: E402
from beamsearch.precedence import resolve  # noqa: E402
from beamsearch.providers.openai_errors import rejected_keyword  # noqa: E402
from beamsearch.schemas import (  # noqa: E402
    ChecklistAnswer,
    keywords_of,
    parse_answer,
    strict_json_schema,
    without_keywords,
)

KEY_ENV = "FAKE_BOUNDS_KEY"


@pytest.fixture(autouse=True)
def keyed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-bounds-test-key-0001")


def flags_for(server: FakeOpenAI, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    flags: dict[str, Any] = {"prompt": "a red lighthouse in a storm", "n": 2, "m": 1, "iterations": 2,
                             "provider": "openai", "runs_dir": str(tmp_path / "runs"), "alignment": "checklist",
                             "retries.backoff_initial": 0.01, "retries.backoff_max": 0.02, "image.size": "64x64"}
    for role in ("text", "image", "vision"):
        flags.update({f"{role}.base_url": server.url, f"{role}.api_key_env": KEY_ENV, f"{role}.timeout": 10.0})
    return {**flags, **extra}


def schemas_sent(server: FakeOpenAI) -> dict[str, list[dict[str, Any]]]:
    sent: dict[str, list[dict[str, Any]]] = {}
    for body in server.bodies:
        spec = (body.get("response_format") or {}).get("json_schema") if isinstance(body.get("response_format"), dict) else None
        if spec:
            sent.setdefault(spec["name"], []).append(spec["schema"])
    return sent


async def test_the_schema_sent_keeps_min_items_and_carries_score_bounds(tmp_path: Path) -> None:
    with FakeOpenAI() as server:
        result = await start_run(resolve(None, flags_for(server, tmp_path, alignment="rating")))
        rating = schemas_sent(server)
    with FakeOpenAI() as server:
        checklist_run = await start_run(resolve(None, flags_for(server, tmp_path)))
        checklist = schemas_sent(server)
    assert result.exit_code == 0 and checklist_run.exit_code == 0
    alignment, aesthetic = rating["judge_alignment"][0]["properties"], rating["judge_aesthetic"][0]["properties"]
    assert (alignment["score"]["minimum"], alignment["score"]["maximum"]) == (0, 100)
    assert (aesthetic["score"]["minimum"], aesthetic["score"]["maximum"]) == (0, 10)
    assert alignment["found"]["maxItems"] == 12 and alignment["notes"]["maxLength"] == 800
    assert rating["critique"][0]["properties"]["suggestions"]["minItems"] == 1
    questions = checklist["checklist"][0]["properties"]["questions"]
    assert (questions["minItems"], questions["maxItems"]) == (1, 20)
    weight = questions["items"]["properties"]["weight"]
    assert weight == {"description": weight["description"], "type": "integer", "minimum": 1, "maximum": 3}
    assert questions["items"]["properties"]["question"]["maxLength"] == 160


async def test_a_server_that_refuses_maximum_still_gets_answers_once_per_model(tmp_path: Path) -> None:
    one_at_a_time = {"limits.text.concurrency": 1, "limits.vision.concurrency": 1}
    with FakeOpenAI(FakeConfig(refuse_keywords=("maximum",))) as server:
        result = await start_run(resolve(None, flags_for(server, tmp_path, **one_at_a_time)))
        sent = schemas_sent(server)
    assert result.exit_code == 0, result.error
    # one refusal per role's model (text: the checklist's weight; vision: the aesthetic score), then never again
    assert server.stats["text"].faults["param"] == 1 and server.stats["vision"].faults["param"] == 1
    with_maximum = [name for name, schemas in sent.items() for s in schemas if "maximum" in keywords_of(s)]
    assert sorted(with_maximum) == ["checklist", "judge_aesthetic"]  # the two refused requests
    later = sent["judge_aesthetic"][-1]["properties"]
    assert "maximum" not in later["score"] and later["score"]["minimum"] == 0 and later["weak"]["maxItems"] == 8
    events = [json.loads(line) for line in (result.store.path / "events.jsonl").read_text().splitlines()]
    adapted = [e["meta"]["adapted"] for e in events if e["type"] == "step" and "adapted" in e["meta"]]
    assert adapted == [["schema without maximum"], ["schema without maximum"]]
    # the answers are still checked against the bounds the server was not sent
    with pytest.raises(Exception, match="less than or equal to 10"):
        from beamsearch.schemas import AestheticAnswer

        parse_answer('{"score": 70, "weak": [], "notes": ""}', AestheticAnswer)


def test_the_keyword_named_is_found_as_a_whole_word() -> None:
    import httpx2

    def refusal(message: str, param: str | None = "response_format") -> openai.BadRequestError:
        request = httpx2.Request("POST", "http://127.0.0.1/v1/chat/completions")
        body = {"message": message, "type": "invalid_request_error", "param": param}
        return openai.BadRequestError(message, response=httpx2.Response(400, request=request), body=body)

    used = {"minimum", "maximum", "exclusiveMinimum", "maxLength"}
    worded = "Invalid schema for response_format 'x': In context=('properties', 'w'), 'exclusiveMinimum' is not permitted."
    assert rejected_keyword(refusal(worded), used) == "exclusiveMinimum"
    assert rejected_keyword(refusal("unsupported keyword in schema: maxlength", None), used) == "maxLength"
    assert rejected_keyword(refusal("Invalid value for 'size'.", "size"), used) is None  # not about the schema
    assert rejected_keyword(refusal(worded), set()) is None


def test_without_keywords_keeps_property_names() -> None:
    schema = {"type": "object", "properties": {"maximum": {"type": "number", "maximum": 3}}, "maxItems": 2}
    assert without_keywords(schema, {"maximum", "maxItems"}) == {"type": "object",
                                                                 "properties": {"maximum": {"type": "number"}}}
    assert "maxItems" in keywords_of(strict_json_schema(ChecklistAnswer))


def test_old_float_weights_still_read_and_a_zero_weight_is_refused() -> None:
    question = {"id": "q1", "question": "Is there a boat?", "category": "entity", "element": "boat", "depends_on": []}
    assert parse_answer(json.dumps({"questions": [{**question, "weight": 2.5}]}), ChecklistAnswer).questions[0].weight == 2.5
    with pytest.raises(Exception, match="greater than 0"):
        parse_answer(json.dumps({"questions": [{**question, "weight": 0}]}), ChecklistAnswer)
    from beamsearch.schemas import CritiqueAnswer

    with pytest.raises(Exception, match="suggestions: Field required"):  # a list that must hold something
        parse_answer('{"critique": "More contrast."}', CritiqueAnswer)
