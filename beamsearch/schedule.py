"""The search's schedule: which dimension an iteration refines, and how many children each parent has.

These are the algorithm's shape (DESIGN.md, section 1), used by the engine that runs it, by `estimate`
that plans it, and by the readers that explain it (the family tree, the report).
"""

from __future__ import annotations

EXPAND = "expand"


def dimension_of(iteration: int) -> str:
    """Iteration 0 expands both; odd iterations refine WHAT, even ones HOW (the seed's algorithm)."""
    if iteration == 0:
        return EXPAND
    return "what" if iteration % 2 == 1 else "how"


def children_per_parent(n: int, parents: int) -> list[int]:
    """N // P each, and the first N % P parents one more, so that there are exactly N children."""
    return [n // parents + (1 if i < n % parents else 0) for i in range(parents)]
