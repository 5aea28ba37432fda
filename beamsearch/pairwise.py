"""Pairwise ranking's arithmetic: how many finalists and pairs, decisive results with what follows from
them by transitivity, and Copeland scores (see `judging` for how the comparisons are made)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def finalists_count(pool: int, m: int, finalists: int | None) -> int:
    """How many of the score order enter the pairwise round: the setting, else max(4, 2M), at most the pool."""
    return min(pool, finalists if finalists is not None else max(4, 2 * m))


def pairwise_pair_bounds(finalists: int, max_pairs: int | None) -> tuple[int, int]:
    """Fewest and most pairs one ranking compares (each pair is two vision calls). The fewest is F-1:
    the first round compares every neighbour, and if those results form a chain the rest is implied."""
    low, high = max(0, finalists - 1), finalists * (finalists - 1) // 2
    if max_pairs is not None:
        low, high = min(low, max_pairs), min(high, max_pairs)
    return low, high


class Tournament:
    """Decisive results between candidates and what follows from them by transitivity."""

    def __init__(self) -> None:
        self.beats: dict[str, set[str]] = {}

    def add_win(self, winner: str, loser: str) -> None:
        self.beats.setdefault(winner, set()).add(loser)

    def implies(self, winner: str, loser: str) -> bool:
        """Is there a chain of decisive wins from `winner` down to `loser`?"""
        stack, seen = [winner], {winner}
        while stack:
            for nxt in self.beats.get(stack.pop(), ()):
                if nxt == loser:
                    return True
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return False


def copeland(ids: Sequence[str], comparisons: Sequence[dict[str, Any]], skipped: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Copeland score: one point per win (direct or implied), half a point per tie."""
    score = dict.fromkeys(ids, 0.0)
    for c in comparisons:
        if c.get("winner"):
            score[c["winner"]] += 1.0
        elif c.get("agree") is False:
            a, b = c["pair"]
            score[a] += 0.5
            score[b] += 0.5
    for s in skipped:
        score[s["implied"]] += 1.0
    return score
