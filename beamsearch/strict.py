"""The base of every settings model: unknown keys refused, assignments validated, and no yes/no where a
number belongs. Apart from `config` so that the simulator's settings (`sim_settings`) can share it."""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError


def _annotation_types(annotation: Any) -> set[Any]:
    args = typing.get_args(annotation)
    return {t for a in args for t in _annotation_types(a)} if args else {annotation}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        """pydantic reads `n: true` as 1; a yes/no where a number belongs is a mistake worth naming."""
        if isinstance(value, bool) and info.field_name is not None:
            types = _annotation_types(cls.model_fields[info.field_name].annotation)
            if bool not in types and types & {int, float}:
                raise PydanticCustomError("bool_for_number", "must be a number, not true or false")
        return value
