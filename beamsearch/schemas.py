"""The answers that judging and critique must give, as pydantic models and as strict JSON schemas.

The schema is sent in `response_format` so that capable servers constrain the answer; the pydantic
model validates it anyway, because not every OpenAI-compatible server enforces schemas.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from beamsearch.errors import InvalidAnswer


class Answer(BaseModel):
    model_config = ConfigDict(extra="ignore")


class AlignmentAnswer(Answer):
    score: float = Field(ge=0, le=100)
    found: list[str] = Field(default_factory=list)
    missing: list[str] = Field(default_factory=list)
    notes: str = ""


class AestheticAnswer(Answer):
    score: float = Field(ge=0, le=10)
    weak: list[str] = Field(default_factory=list)
    notes: str = ""


class CritiqueAnswer(Answer):
    critique: str = Field(min_length=1)
    suggestions: list[str] = Field(min_length=1)


def strict_schema(model: type[BaseModel]) -> dict[str, Any]:
    """A JSON schema in the strict form structured outputs accept: every property required, no extras."""
    properties: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if annotation is float:
            spec: dict[str, Any] = {"type": "number"}
        elif annotation is str:
            spec = {"type": "string"}
        else:
            spec = {"type": "array", "items": {"type": "string"}}
        if field.description:
            spec["description"] = field.description
        properties[name] = spec
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


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


def clean_text(text: str | None, what: str) -> str:
    """A free-text answer with quotes and a leading label removed; empty is invalid."""
    cleaned = (text or "").strip().strip('"').strip()
    for label in ("WHAT:", "HOW:", "Prompt:", "PROMPT:"):
        if cleaned.startswith(label):
            cleaned = cleaned[len(label):].strip()
    if not cleaned:
        raise InvalidAnswer(f"the {what} answer is empty")
    return cleaned
