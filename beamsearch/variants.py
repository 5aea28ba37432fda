"""No paying twice for one picture: a lane's WHAT/HOW pair must differ from every pair already sent to
the image model in the run (its parent's, every earlier candidate's) and from its siblings'.

A lane whose pair repeats one is asked again for a different variant (at most `variants` times, the
repeated texts named to avoid); if it still repeats, it is skipped unrendered and the log says so.

Which lane keeps a pair and which must change is decided by order, never by timing, so that a replay
(and any run with the same seed) decides exactly the same: within an iteration, lanes that could
produce the same pair form a *claim group* (iteration 0: every lane; later, the children of the parents
that share the text a refinement keeps), and a lane is judged only once every lower-numbered lane of its
group has settled its pair. The wait sits before the image, where it costs nothing in the usual case:
the lane's combine runs meanwhile, and its siblings' text calls have long finished by then. Lanes that
cannot produce the same pair (children that keep different texts) never wait for each other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from beamsearch.events import Candidate, LaneSkipped

Pair = tuple[str, str]
Ask = Callable[[int, dict[str, list[str]]], Awaitable[None]]  # (attempt, texts to avoid) -> sets what/how
Combine = Callable[[int], Awaitable[str]]  # (attempt) -> the combined prompt of the lane's current pair


def normal(text: str) -> str:
    """Text as it is compared: case, spacing and trailing punctuation do not make a new prompt."""
    return " ".join(text.casefold().split()).strip(" .,;:!")


def pair_of(c: Candidate) -> Pair:
    return (normal(c.what), normal(c.how))


@dataclass
class Turn:
    """One lane's place in its claim group: the lanes before it, and its own settled pair."""

    lane: Candidate
    before: list[Turn]
    settled: asyncio.Future[Pair | None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    def settle(self, pair: Pair | None) -> None:
        if not self.settled.done():
            self.settled.set_result(pair)


class Ledger:
    """Every pair sent to the image model in earlier iterations, and this iteration's claim groups."""

    def __init__(self, variants: int | None, journal: Callable[[LaneSkipped], None]) -> None:
        self.variants = variants  # None: no check (the seed's behaviour, and runs made before the check)
        self._journal = journal
        self._made: dict[Pair, str] = {}
        self._groups: dict[object, list[Turn]] = {}

    def join(self, group: object, c: Candidate) -> Turn:
        """Take `c`'s turn in `group` (call in lane order, before any lane runs)."""
        turns = self._groups.setdefault(group, [])
        turn = Turn(c, list(turns))
        turns.append(turn)
        return turn

    def close_iteration(self) -> None:
        """The iteration is ranked: its pairs join the made ones, its groups are done."""
        for turns in self._groups.values():
            for turn in turns:
                if turn.settled.done() and (pair := turn.settled.result()) is not None:
                    self._made.setdefault(pair, turn.lane.id)
        self._groups = {}

    async def _repeats(self, turn: Turn) -> str | None:
        """Whose pair `turn`'s lane repeats: an earlier iteration's, or a lower lane's of its group."""
        pair = pair_of(turn.lane)
        for before in turn.before:
            if await asyncio.shield(before.settled) == pair:
                return before.lane.id
        return self._made.get(pair)

    async def settle(self, turn: Turn, ask: Ask, combine: Combine, changed: tuple[str, ...]) -> str | None:
        """Ask for the lane's pair and combine it until the pair is new; return the combined prompt, or
        None when every variant repeated (the lane is then marked skipped). The lane's combine runs
        while it waits for its turn, so waiting costs nothing unless a lower lane is still busy."""
        avoid: dict[str, list[str]] = {"what": [], "how": []}
        try:
            for attempt in range((self.variants or 0) + 1):
                await ask(attempt, avoid)
                combined = asyncio.ensure_future(combine(attempt))
                try:
                    repeats = None if self.variants is None else await self._repeats(turn)
                except BaseException:
                    combined.cancel()
                    raise
                prompt = await combined  # a combine already asked is paid for: it finishes and is logged
                if repeats is None:
                    turn.settle(pair_of(turn.lane))
                    return prompt
                for dimension in changed:
                    if getattr(turn.lane, dimension) not in avoid[dimension]:
                        avoid[dimension].append(getattr(turn.lane, dimension))
            c = turn.lane
            c.status, c.error = "skipped", f"every variant repeats the prompt of {repeats}"
            self._journal(LaneSkipped(id=c.id, iteration=c.iteration, parent=c.parent, repeats=repeats or "",
                                      reason=c.error))
            return None
        finally:
            turn.settle(None)  # failed or skipped: later lanes need not wait for it
