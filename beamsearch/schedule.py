"""The search's schedule: which dimension a refinement changes, and how many children each parent has.

These are the algorithm's shape (DESIGN.md, section 1), used by the engine that runs it, by `estimate`
that plans it, and by the readers that explain it (the family tree, the report).

`refine` chooses what a refinement iteration changes:
* `alternate` (the seed's algorithm): odd iterations refine WHAT, even ones HOW;
* `both`: every child refines WHAT and HOW from one critique of both;
* `weakest`: each parent's children refine the dimension its judges rated relatively lower
  (alignment out of 100 against aesthetic out of 10), so one iteration may refine both kinds.
"""

from __future__ import annotations

from typing import Any

EXPAND = "expand"
REFINE_MODES = ("alternate", "both", "weakest")


def dimension_of(iteration: int, refine: str = "alternate") -> str:
    """What iteration `iteration` does, as one word: expand (iteration 0), what, how, both or weakest."""
    if iteration == 0:
        return EXPAND
    if refine == "alternate":
        return "what" if iteration % 2 == 1 else "how"
    return refine


def dimension_for(refine: str, iteration: int, parent: Any) -> str:
    """The dimension a parent's children refine in `iteration`: what, how or both."""
    if refine == "weakest":
        return "what" if parent.alignment / 100.0 <= parent.aesthetic / 10.0 else "how"
    return dimension_of(iteration, refine)


def refined_of(candidate: dict[str, Any]) -> str:
    """What made a candidate, as a logged candidate says it: expand (iteration 0), or the dimension its
    refinement changed (what, how or both). Candidates logged before `refined` was kept were made by
    alternation, the only schedule there was."""
    iteration = candidate.get("iteration", 0)
    if iteration == 0:
        return EXPAND
    return candidate.get("refined") or dimension_of(iteration)


def dimensions(refined: str) -> tuple[str, ...]:
    """The dimensions a refinement writes: ("what",), ("how",) or both."""
    return ("what", "how") if refined == "both" else (refined,)


def children_per_parent(n: int, parents: int) -> list[int]:
    """N // P each, and the first N % P parents one more, so that there are exactly N children."""
    return [n // parents + (1 if i < n % parents else 0) for i in range(parents)]
