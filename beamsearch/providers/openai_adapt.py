"""What a model refused, learned from its 400s and applied to every later request of its role.

A model may refuse an optional parameter (`temperature` on reasoning models, `max_tokens` where it wants
`max_completion_tokens` or the other way round, `response_format` on some local servers) or a keyword of
the answer's JSON schema (`maxLength` or `minimum` where strict structured outputs do not take them).
Either is asked again at once without it (renamed, dropped, or left out of the schema) and remembered,
so a refusal costs one extra request per model instead of a failed step. A refused schema keyword is
looked for first: a refusal of the schema names `response_format`, which must not be dropped for it.
"""

from __future__ import annotations

from typing import Any

RENAMES = {"max_completion_tokens": "max_tokens", "max_tokens": "max_completion_tokens"}
OPTIONAL = {"temperature", "max_tokens", "max_completion_tokens", "response_format"}


def json_schema_of(params: dict[str, Any]) -> dict[str, Any] | None:
    """The `json_schema` part of a chat request's response_format (None for images, whose response_format
    is a word, and for plain answers)."""
    chosen = params.get("response_format")
    spec = chosen.get("json_schema") if isinstance(chosen, dict) else None
    return spec if isinstance(spec, dict) else None


class Adaptations:
    """The parameters renamed or dropped and the schema keywords left out for one role's model."""

    def __init__(self) -> None:
        self.dropped: set[str] = set()
        self.renamed: dict[str, str] = {}
        self.refused: set[str] = set()
        self.schema_refused: set[str] = set()

    def adapt(self, params: dict[str, Any]) -> dict[str, Any]:
        """`params` as this model takes them."""
        adapted = {}
        for name, value in params.items():
            name = self.renamed.get(name, name)
            if name not in self.dropped:
                adapted[name] = value
        spec = json_schema_of(adapted) if self.schema_refused else None
        if spec is not None:
            from beamsearch.schemas import without_keywords

            schema = without_keywords(spec["schema"], self.schema_refused)
            adapted["response_format"] = {**adapted["response_format"], "json_schema": {**spec, "schema": schema}}
        return adapted

    def learn(self, exc: BaseException, params: dict[str, Any], sent: dict[str, Any]) -> str | None:
        """If `exc` refuses a schema keyword or an optional parameter we `sent`, remember to leave the keyword
        out, or to rename or drop the parameter; say what changed (None: nothing to learn from it)."""
        from beamsearch.providers.openai_errors import rejected_keyword, rejected_parameter
        from beamsearch.schemas import OPTIONAL_KEYWORDS, keywords_of

        schema = (json_schema_of(sent) or {}).get("schema")
        keyword = rejected_keyword(exc, keywords_of(schema) & set(OPTIONAL_KEYWORDS)) if schema else None
        if keyword is not None:
            self.schema_refused.add(keyword)
            return f"schema without {keyword}"
        name = rejected_parameter(exc, {n for n in sent if n in OPTIONAL})
        if name is None:
            return None
        self.refused.add(name)
        original = next((k for k in params if self.renamed.get(k, k) == name), name)
        if name in RENAMES and RENAMES[name] not in self.refused:
            self.renamed[original] = RENAMES[name]
            return f"{name} -> {RENAMES[name]}"
        self.dropped.add(name)
        return f"dropped {name}"
