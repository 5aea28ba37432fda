"""The answers that judging and critique must give, as pydantic models and as strict JSON schemas.

The schema is sent in `response_format` so that capable servers constrain the answer; the pydantic
model validates it anyway, because not every OpenAI-compatible server enforces schemas.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError

from beamsearch.errors import InvalidAnswer


class Answer(BaseModel):
    model_config = ConfigDict(extra="ignore")


# A score must be a JSON number: pydantic's lax mode would read `true` as 1 and "85" as 85, which are
# answers that did not follow the schema and would rank a candidate on a guess. Integers are numbers.
Number = Annotated[float, Strict()]


class AlignmentAnswer(Answer):
    score: Number = Field(ge=0, le=100)
    found: list[str] = Field(default_factory=list)
    missing: list[str] = Field(default_factory=list)
    notes: str = ""


class AestheticAnswer(Answer):
    score: Number = Field(ge=0, le=10)
    weak: list[str] = Field(default_factory=list)
    notes: str = ""


class CritiqueAnswer(Answer):
    critique: str = Field(min_length=1)
    suggestions: list[str] = Field(min_length=1)


class ChecklistQuestion(Answer):
    id: str = Field(min_length=1, description="a short unique id, e.g. q1")
    question: str = Field(min_length=3, description="a yes/no question about the image")
    category: Literal["entity", "attribute", "relation", "scene", "whole"]
    element: str = Field(description="the element of the idea it checks, in a few words")
    depends_on: list[str] = Field(description="ids of questions that must be answered yes for this one to count")
    weight: Number = Field(gt=0, le=10, description="importance: 1 for a detail, up to 3 for an essential element")


class ChecklistAnswer(Answer):
    questions: list[ChecklistQuestion] = Field(min_length=1)


class CheckAnswer(Answer):
    id: str
    answer: Literal["yes", "no"]


class ChecklistJudgeAnswer(Answer):
    answers: list[CheckAnswer]
    notes: str = ""


class PairwiseAnswer(Answer):
    winner: Literal["first", "second"]
    reason: str = ""


_UNSUPPORTED_KEYWORDS = {"title", "default", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
                         "minLength", "maxLength", "minItems", "maxItems"}


def strict_json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The strict form of any answer model, nested objects and enums included: references inlined, every
    property required, no extras, and the keywords strict structured outputs may refuse left out (the
    pydantic model still checks them)."""
    raw = model.model_json_schema()
    definitions = raw.pop("$defs", {})

    def fix(node: Any) -> Any:
        if isinstance(node, list):
            return [fix(item) for item in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            node = {**definitions[node["$ref"].rsplit("/", 1)[-1]], **{k: v for k, v in node.items() if k != "$ref"}}
        fixed = {k: fix(v) for k, v in node.items() if k not in _UNSUPPORTED_KEYWORDS and k != "properties"}
        if "properties" in node:  # property names are data, never keywords: keep every one
            fixed["properties"] = {name: fix(spec) for name, spec in node["properties"].items()}
        if fixed.get("type") == "object":
            fixed["required"] = list(fixed.get("properties", {}))
            fixed["additionalProperties"] = False
        return fixed

    return fix(raw)


def parse_answer(text: str, model: type[BaseModel]) -> BaseModel:
    """Parse and validate a model's JSON answer; any failure is an InvalidAnswer (retried by the gate)."""
    cleaned = text.strip()
    if cleaned.startswith("```"):
        cleaned = cleaned.strip("`")
        cleaned = cleaned.split("\n", 1)[1] if "\n" in cleaned else cleaned
    try:
        data = json.loads(cleaned)
    except (ValueError, TypeError):
        raise InvalidAnswer(f"the answer is not JSON: {text[:80]!r}") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "answer"
        raise InvalidAnswer(f"the answer does not fit its schema ({where}: {first['msg']})") from None
