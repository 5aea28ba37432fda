"""The three roles of a run, and what is known of each one: who serves it and which model it bills.

Every call a search makes belongs to one role: `text` (expand, combine, critique, refine, checklist),
`image` (generate) or `vision` (every judge). Each role has its own provider, model, endpoint and limits.
"""

from __future__ import annotations

from typing import Any, Literal

ROLES: tuple[str, ...] = ("text", "image", "vision")
Role = Literal["text", "image", "vision"]


def billed_model(settings: Any, role: str) -> str:
    """The model name a role's calls are priced by: the simulator bills as `sim-<role>`."""
    return f"sim-{role}" if settings.role_provider(role) == "sim" else getattr(settings, role).model
