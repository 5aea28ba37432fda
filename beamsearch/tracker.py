"""What the live view knows about a run in progress, folded from the events it hears.

The run's view (scores, rankings, the spend of this session) is the one fold of the log (`view.RunView`);
what only progress events tell is kept here: each lane's stage, WHAT and HOW, its retries (an
`attempt_failed` names a step key, which `stepkeys.parts_of` maps to the lane or lanes waiting on it),
the last ranking's survivors, and how long iterations take against the estimate, for the time left.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from beamsearch.events import AttemptFailed, Candidate, Event, FinalCheck, Ranking, RunStarted, Step
from beamsearch.progress import IterationStarted, Ranked, StageChanged
from beamsearch.stepkeys import parts_of
from beamsearch.view import RunView

STAGES = ("expand", "critique", "refine", "combine", "image", "judge", "done", "failed", "skipped")
FINISHED = ("done", "failed", "skipped")


@dataclass
class Lane:
    """One candidate of the current iteration as the live view shows it."""

    id: str
    parent: str | None
    started: float
    stage: str = "expand"
    finished: float | None = None
    what: str = ""
    how: str = ""
    alignment: float | None = None
    aesthetic: float | None = None
    total: float | None = None
    error: str | None = None
    retries: int = 0
    retrying: str | None = None  # the last failed attempt, until the lane moves on

    @property
    def finished_or_failed(self) -> bool:
        return self.stage in FINISHED


def order_of(cid: str) -> tuple[int, int]:
    """i2c07 -> (2, 7), so ties go to the earlier candidate as in the ranking."""
    try:
        iteration, index = cid[1:].split("c", 1)
        return int(iteration), int(index)
    except ValueError:
        return (1 << 30, 0)


class Tracker:
    """Folds events into the state a display shows. `estimate` is the estimated seconds of each
    iteration (`estimate.time_lower_bound`), scaled by how long the iterations paid for here really took."""

    def __init__(self, m: int = 3, iterations: int | None = None, max_cost: float | None = None,
                 estimate: list[float] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.m, self.iterations, self.max_cost, self.estimate = m, iterations, max_cost, estimate
        self.clock = clock
        self.view = RunView()
        self.iteration = 0
        self.dimension = "expand"
        self.lanes: dict[str, Lane] = {}
        self.lanes_expected = 0
        self.spent_before = 0.0  # a resumed run replays its paid steps silently: start from what they cost
        self.resumed = False
        self.retries = 0
        self.other_retry: str | None = None  # a retry of a pairwise comparison or of the run's checklist
        self.best: tuple[str, float] | None = None
        self.scores: dict[str, float] = {}
        self.survivors: list[str] = []
        self.survivors_of: int | None = None
        self.started = clock()
        self.iteration_started = self.started
        self.paid_here = False  # a live step finished in this iteration (a replayed one sends no event)
        self.timings: dict[int, float] = {}  # iteration -> seconds it took, for iterations paid for here

    @property
    def spent(self) -> float:
        return self.spent_before + self.view.spent

    @property
    def steps_done(self) -> int:
        return sum(u.calls for u in self.view.usage.values())

    def update(self, event: Event) -> None:
        self.view.apply(event)
        if isinstance(event, RunStarted):
            self.spent_before, self.resumed = event.spent_usd, event.resumed
        elif isinstance(event, IterationStarted):
            self.iteration, self.dimension, self.lanes_expected = event.iteration, event.dimension, event.lanes
            self.lanes, self.other_retry = {}, None
            self.iteration_started, self.paid_here = self.clock(), False
        elif isinstance(event, StageChanged):
            self._stage(event)
        elif isinstance(event, AttemptFailed):
            self._attempt_failed(event)
        elif isinstance(event, Step):
            self.paid_here = True
            self._answered(event.key)
        elif isinstance(event, Candidate):
            self._scored(event.id, event.total)
        elif isinstance(event, Ranking):
            for cid, total in event.pool:
                if total is not None:
                    self.scores.setdefault(cid, total)
        elif isinstance(event, Ranked):
            self._ranked(event)
        elif isinstance(event, FinalCheck):  # the survivors judged again: the answer, by its average
            total = self.score_of(event.best)
            self.best = (event.best, total if total is not None else dict(event.pool).get(event.best) or 0.0)

    def _lane(self, cid: str, parent: str | None = None) -> Lane:
        if cid not in self.lanes:
            self.lanes[cid] = Lane(cid, parent, self.clock())
        return self.lanes[cid]

    def _stage(self, event: StageChanged) -> None:
        lane = self._lane(event.id, event.parent)
        lane.stage, lane.retrying = event.stage, None  # a new stage: the step before it was answered
        for name in ("what", "how", "total", "alignment", "aesthetic", "error"):
            if getattr(event, name) is not None:
                setattr(lane, name, getattr(event, name))
        if event.stage in FINISHED:
            lane.finished = self.clock()
        if event.stage == "done" and event.total is not None:
            self._scored(event.id, event.total)

    def lanes_of(self, key: str) -> list[Lane]:
        """The lanes of the current iteration waiting on the step `key`."""
        parts = parts_of(key)
        if parts.iteration != self.iteration:
            return []
        if parts.lane is not None:
            return [self._lane(f"i{parts.iteration}{parts.lane}")]
        if parts.parent is not None:
            return [lane for lane in self.lanes.values() if lane.parent == parts.parent]
        return []

    def _attempt_failed(self, event: AttemptFailed) -> None:
        self.retries += 1
        task = parts_of(event.key).task.replace("_", " ")
        note = f"{task} attempt {event.attempt} failed{' for good' if event.final else ', retrying'}: {event.error}"
        lanes = self.lanes_of(event.key)
        for lane in lanes:
            lane.retries += 1
            lane.retrying = note
        if not lanes:
            self.other_retry = f"{event.key}: {note}"

    def _answered(self, key: str) -> None:
        task = parts_of(key).task.replace("_", " ")
        for lane in self.lanes_of(key):
            if lane.retrying is not None and lane.retrying.startswith(task + " "):
                lane.retrying = None

    def _ranked(self, event: Ranked) -> None:
        self.best = (event.best, event.best_total)
        self.scores.setdefault(event.best, event.best_total)
        self.survivors, self.survivors_of = list(event.survivors), event.iteration
        if self.paid_here:
            self.timings[event.iteration] = self.clock() - self.iteration_started

    def _scored(self, cid: str, total: float) -> None:
        self.scores[cid] = total
        if self.best is None or total > self.best[1] or (total == self.best[1] and order_of(cid) < order_of(self.best[0])):
            self.best = (cid, total)

    def score_of(self, cid: str) -> float | None:
        if cid in self.view.candidates:
            return self.view.candidates[cid].total
        return self.scores.get(cid)

    def top(self) -> list[tuple[str, float]]:
        """The beam if the iteration were ranked now: this iteration's scored lanes plus the survivors."""
        pool = {cid for cid, lane in self.lanes.items() if lane.stage == "done"} | set(self.survivors)
        scored = [(cid, total) for cid in pool if (total := self.score_of(cid)) is not None]
        return sorted(scored, key=lambda item: (-item[1], order_of(item[0])))[: self.m]

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STAGES, 0)
        for lane in self.lanes.values():
            counts[lane.stage] = counts.get(lane.stage, 0) + 1
        return counts

    # --- progress and time left ---------------------------------------------------------------------

    def finished_lanes(self) -> int:
        return sum(1 for lane in self.lanes.values() if lane.finished_or_failed)

    def progress(self) -> float:
        """The share of the run done: finished iterations plus the share of this one's lanes finished."""
        if not self.iterations:
            return 0.0
        lanes = self.finished_lanes() / self.lanes_expected if self.lanes_expected else 0.0
        return min(1.0, (self.iteration + lanes) / self.iterations)

    def pace(self) -> float:
        """How much longer than estimated the iterations paid for in this session took (1 before any)."""
        if not self.estimate:
            return 1.0
        done = [(seconds, self.estimate[k]) for k, seconds in self.timings.items() if k < len(self.estimate)]
        expected = sum(e for _, e in done)
        return sum(s for s, _ in done) / expected if expected > 0 else 1.0

    def time_left(self) -> float | None:
        """Seconds left by the estimate: the rest of this iteration and every later one, at the pace seen."""
        if not self.estimate or self.iterations is None or self.iteration >= len(self.estimate):
            return None
        pace = self.pace()
        current = max(0.0, pace * self.estimate[self.iteration] - (self.clock() - self.iteration_started))
        return current + pace * sum(self.estimate[self.iteration + 1: self.iterations])

    def lane_view(self) -> list[dict[str, Any]]:
        """The lanes in id order, as plain data (the live table and tests read it)."""
        now = self.clock()
        return [{"lane": lane, "elapsed": (lane.finished or now) - lane.started}
                for _, lane in sorted(self.lanes.items(), key=lambda item: order_of(item[0]))]
