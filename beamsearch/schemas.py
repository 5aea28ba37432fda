"""The answers that judging and critique must give, as pydantic models and as strict JSON schemas.

The schema is sent in `response_format` so that capable servers constrain the answer; the pydantic
model validates it anyway, because not every OpenAI-compatible server enforces schemas.
"""

from __future__ import annotations

import functools
import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError, WithJsonSchema
from pydantic_core import PydanticUndefined

from beamsearch.errors import InvalidAnswer


class Answer(BaseModel):
    model_config = ConfigDict(extra="ignore")


# A score must be a JSON number: pydantic's lax mode would read `true` as 1 and "85" as 85, which are
# answers that did not follow the schema and would rank a candidate on a guess. Integers are numbers.
Number = Annotated[float, Strict()]


def text(most: int, least: int = 0, description: str | None = None, default: Any = PydanticUndefined) -> Any:
    """A string field whose schema says `maxLength` (and `minLength`): a grammar-constrained server (llama.cpp)
    then ends the string, so the whole answer ends within its tokens. Validation refuses only what is too
    short to use: a longer string from a server that does not enforce the schema is still an answer."""
    return Field(default, min_length=least or None, description=description, json_schema_extra={"maxLength": most})


def items(most: int, least: int = 0, description: str | None = None) -> Any:
    """A list field whose schema says `maxItems` (and `minItems`); validation, as for `text`, refuses only
    too few (a model asked for a list that never closes it would otherwise write until its token limit)."""
    if least:  # a list that must hold something must be given
        return Field(min_length=least, description=description, json_schema_extra={"maxItems": most})
    return Field(default_factory=list, description=description, json_schema_extra={"maxItems": most})


Short = Annotated[str, Field(json_schema_extra={"maxLength": 160})]
Id = Annotated[str, Field(json_schema_extra={"maxLength": 24})]
# The checklist's weight is asked as a whole number 1-3 (integer bounds are what a grammar enforces;
# number bounds are not, by llama.cpp), and read as any number in (0, 10], as it always was (old logs).
Weight = Annotated[float, Strict(), Field(gt=0, le=10), WithJsonSchema(dict(
    type="integer", minimum=1, maximum=3,
    description="importance: 1 for a detail, 2 for a clear requirement, 3 for an essential element"))]


class AlignmentAnswer(Answer):
    score: Number = Field(ge=0, le=100)
    found: list[Short] = items(12)
    missing: list[Short] = items(12)
    notes: str = text(800, default="")


class AestheticAnswer(Answer):
    score: Number = Field(ge=0, le=10)
    weak: list[Short] = items(8)
    notes: str = text(800, default="")


class CritiqueAnswer(Answer):
    critique: str = text(1200, least=1)
    suggestions: list[Short] = items(6, least=1)


class ChecklistQuestion(Answer):
    id: Id = Field(min_length=1, description="a short unique id, e.g. q1")
    question: str = text(160, least=3, description="a yes/no question about the image")
    category: Literal["entity", "attribute", "relation", "scene", "whole"]
    element: str = text(80, description="the element of the idea it checks, in a few words")
    depends_on: list[Id] = items(8, description="ids of questions that must be answered yes for this one to count")
    weight: Weight


class ChecklistAnswer(Answer):
    questions: list[ChecklistQuestion] = items(20, least=1)


class CheckAnswer(Answer):
    id: Id
    answer: Literal["yes", "no"]


class ChecklistJudgeAnswer(Answer):
    answers: list[CheckAnswer] = items(40)
    notes: str = text(800, default="")


class PairwiseAnswer(Answer):
    winner: Literal["first", "second"]
    reason: str = text(300, default="")


# Left out of every schema: they say nothing a model must follow (pydantic's titles and defaults).
_NOISE = {"title", "default"}


@functools.cache  # one per answer model: every structured call sends it, and nothing changes it
def strict_json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The strict form of any answer model, nested objects and enums included: references inlined, every
    property required, no extras, and every bound kept (score `minimum`/`maximum`, `maxLength`, `maxItems`,
    `minItems`), because a server that enforces the schema keeps to them. A server that refuses one of
    them gets the schema without it, once per model (`without_keywords`, used by the openai provider)."""
    raw = model.model_json_schema()
    definitions = raw.pop("$defs", {})

    def fix(node: Any) -> Any:
        if isinstance(node, list):
            return [fix(item) for item in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            node = {**definitions[node["$ref"].rsplit("/", 1)[-1]], **{k: v for k, v in node.items() if k != "$ref"}}
        fixed = {k: fix(v) for k, v in node.items() if k not in _NOISE and k != "properties"}
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


# Keywords that only narrow what an answer may be: a schema without one still describes the same answer,
# so a server that refuses one can be sent the schema without it.
OPTIONAL_KEYWORDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minLength",
                     "maxLength", "minItems", "maxItems", "pattern", "format", "description")


def keywords_of(node: Any) -> set[str]:
    """The schema keywords used anywhere in a schema (property names are data, not keywords)."""
    if isinstance(node, list):
        return set().union(*(keywords_of(item) for item in node)) if node else set()
    if not isinstance(node, dict):
        return set()
    found = {key for key in node if key != "properties"}
    for key, value in node.items():
        children = value.values() if key == "properties" and isinstance(value, dict) else [value]
        for child in children:
            found |= keywords_of(child)
    return found


def without_keywords(node: Any, names: set[str]) -> Any:
    """A copy of a schema without the keywords `names` (wherever they are), property names untouched."""
    if isinstance(node, list):
        return [without_keywords(item, names) for item in node]
    if not isinstance(node, dict):
        return node
    kept = {k: without_keywords(v, names) for k, v in node.items() if k not in names and k != "properties"}
    if "properties" in node:
        kept["properties"] = {name: without_keywords(spec, names) for name, spec in node["properties"].items()}
    return {k: kept[k] for k in node if k in kept}
