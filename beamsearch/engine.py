"""The beam search: zone functions that fan lanes out, and the ranking barrier where they meet.

Each candidate streams through its own `process_candidate` pipeline (combine -> image -> two judges in
parallel); nothing waits for another lane except the ranking at the end of an iteration. In refinement
iterations each parent's children start the moment that parent's critique is ready.

The engine knows nothing of providers or files: it talks to `steps` (model tasks), `journal` (events
worth keeping) and `notify` (progress for the display). Control flow depends only on the settings and
the answers, so replaying recorded answers reaches exactly the same state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from beamsearch.errors import BeamsearchError, CallError, RunFailed
from beamsearch.events import (
    Candidate,
    Event,
    IterationStarted,
    LaneFailed,
    Ranked,
    Ranking,
    StageChanged,
    now,
)
from beamsearch.judging import Judging, JudgingSettings
from beamsearch.schedule import children_per_parent, dimension_of
from beamsearch.together import all_settled


@dataclass
class SearchSettings:
    idea: str
    n: int
    m: int
    iterations: int
    alpha: float = 0.7
    elitism: bool = True
    target_score: float | None = None
    patience: int | None = None
    min_improvement: float = 0.5
    min_survivors: int = 1
    judging: JudgingSettings = field(default_factory=JudgingSettings)


@dataclass
class Outcome:
    best: Candidate | None
    candidates: list[Candidate]
    iterations_done: int
    stop_reason: str


class StepsLike(Protocol):
    async def expand(self, iteration: int, lane: str, dimension: str, idea: str) -> str: ...
    async def combine(self, iteration: int, lane: str, what: str, how: str) -> str: ...
    async def render(self, iteration: int, lane: str, candidate_id: str, prompt: str, labels: dict[str, str]) -> Any: ...
    async def judge_alignment(self, iteration: int, lane: str, image: str, idea: str) -> Any: ...
    async def judge_aesthetic(self, iteration: int, lane: str, image: str, idea: str) -> Any: ...
    async def critique(self, iteration: int, parent: Candidate, dimension: str, idea: str) -> Any: ...
    async def refine(self, iteration: int, lane: str, dimension: str, parent: Candidate, critique: Any, idea: str) -> str: ...
    async def annotate(self, image: str, entries: dict[str, str]) -> None: ...


Journal = Callable[[Event], None]
Notify = Callable[[Event], None]


def total_score(alignment: float, aesthetic: float, alpha: float) -> float:
    return alpha * alignment + (1 - alpha) * aesthetic * 10


def rank(pool: list[Candidate]) -> list[Candidate]:
    """Best total first; ties go to the earlier candidate (lower iteration, then lower index)."""
    return sorted(pool, key=lambda c: (-c.total, c.order))


class Engine:
    def __init__(self, settings: SearchSettings, steps: StepsLike, journal: Journal, notify: Notify | None = None) -> None:
        self.s = settings
        self.steps = steps
        self.journal = journal
        self.notify = notify or (lambda event: None)
        self.width = max(2, len(str(settings.n - 1)))
        self.candidates: list[Candidate] = []
        self.best: Candidate | None = None
        self._stop: BeamsearchError | None = None
        self.judging = Judging(settings.judging, steps, settings.idea, settings.alpha, settings.m, self.notify)

    def candidate_id(self, iteration: int, index: int) -> str:
        return f"i{iteration}c{index:0{self.width}d}"

    def _stage(self, candidate: Candidate, stage: str, **extra: Any) -> None:
        self.notify(StageChanged(id=candidate.id, parent=candidate.parent, iteration=candidate.iteration, stage=stage,
                                 **extra))

    # --- one lane ---------------------------------------------------------------------------------

    async def process_candidate(self, c: Candidate) -> Candidate:
        """combine -> image -> alignment and aesthetic judged in parallel -> total."""
        lane, k = f"c{c.index:0{self.width}d}", c.iteration
        self._stage(c, "combine", what=c.what, how=c.how)
        c.prompt = await self.steps.combine(k, lane, c.what, c.how)
        self._stage(c, "image")
        rendered = await self.steps.render(k, lane, c.id, c.prompt,
                                           {"beamsearch:what": c.what, "beamsearch:how": c.how,
                                            "beamsearch:parent": c.parent or ""})
        c.image, c.revised_prompt, c.rephrases = rendered.path, rendered.revised_prompt, rendered.rephrases
        if rendered.prompt != c.prompt:
            c.prompt = rendered.prompt
        self._stage(c, "judge")
        await self.judging.score(c, k, lane)  # by default: the two judges in parallel, once each
        c.total = round(total_score(c.alignment, c.aesthetic, self.s.alpha), 4)
        c.status = "done"
        await self.steps.annotate(c.image, {"beamsearch:alignment": str(c.alignment), "beamsearch:aesthetic": str(c.aesthetic),
                                      "beamsearch:total": str(c.total)})
        c.ts = now()
        self.journal(c)
        self._stage(c, "done", total=c.total, alignment=c.alignment, aesthetic=c.aesthetic)
        return c

    async def _guarded(self, c: Candidate, work: Callable[[], Any]) -> Candidate:
        """Run a lane; a call failure fails only this lane, a run-wide stop marks it stopped."""
        try:
            await work()
        except BeamsearchError as exc:  # budget, auth, ...: the run stops after the barrier
            self._stop = self._stop or exc
            c.status, c.error = "stopped", exc.message
        except CallError as exc:
            c.status, c.error = "failed", exc.message
            self.journal(LaneFailed(id=c.id, iteration=c.iteration, parent=c.parent, error=exc.message))
            self._stage(c, "failed", error=exc.message)
        return c

    # --- zones ------------------------------------------------------------------------------------

    async def expansion_zone(self) -> list[Candidate]:
        """Iteration 0: every lane expands its own WHAT and HOW at once, then goes straight on."""

        async def lane(c: Candidate) -> None:
            lane_name = f"c{c.index:0{self.width}d}"
            self._stage(c, "expand")
            c.what, c.how = await all_settled(
                self.steps.expand(0, lane_name, "what", self.s.idea), self.steps.expand(0, lane_name, "how", self.s.idea)
            )
            await self.process_candidate(c)

        lanes = [Candidate(id=self.candidate_id(0, j), iteration=0, index=j) for j in range(self.s.n)]
        return list(await all_settled(*(self._guarded(c, lambda c=c: lane(c)) for c in lanes)))

    async def refinement_zone(self, k: int, dimension: str, parents: list[Candidate]) -> list[Candidate]:
        """Iteration k: one critique per parent; the moment it is ready, that parent's children start."""
        counts = children_per_parent(self.s.n, len(parents))
        families, index = [], 0
        for parent, count in zip(parents, counts, strict=True):
            kids = [Candidate(id=self.candidate_id(k, index + j), iteration=k, index=index + j, parent=parent.id)
                    for j in range(count)]
            index += count
            families.append(self._family(k, dimension, parent, kids))
        return [c for family in await all_settled(*families) for c in family]

    async def _family(self, k: int, dimension: str, parent: Candidate, kids: list[Candidate]) -> list[Candidate]:
        for c in kids:
            self._stage(c, "critique")
        try:
            critique = await self.steps.critique(k, parent, dimension, self.s.idea)
        except BeamsearchError as exc:
            self._stop = self._stop or exc
            for c in kids:
                c.status, c.error = "stopped", exc.message
            return kids
        except CallError as exc:
            for c in kids:
                await self._guarded(c, lambda exc=exc: _raise(exc))
            return kids

        async def lane(c: Candidate) -> None:
            lane_name = f"c{c.index:0{self.width}d}"
            self._stage(c, "refine")
            c.critique = critique.text
            text = await self.steps.refine(k, lane_name, dimension, parent, critique, self.s.idea)
            c.what, c.how = (text, parent.how) if dimension == "what" else (parent.what, text)
            await self.process_candidate(c)

        return list(await all_settled(*(self._guarded(c, lambda c=c: lane(c)) for c in kids)))

    # --- the driver -------------------------------------------------------------------------------

    async def run(self, tasks: asyncio.TaskGroup) -> Outcome:
        """The whole search. Background work (the checklist, made while the first lanes expand) runs as a
        child of `tasks`, the run's own task group, so it never outlives the run."""
        self.judging.start(tasks)
        history: list[float] = []
        stop_reason = "completed all iterations"
        done = 0
        parents: list[Candidate] = []
        for k in range(self.s.iterations):
            dimension = dimension_of(k)
            self.notify(IterationStarted(iteration=k, dimension=dimension, lanes=self.s.n))
            children = await (self.expansion_zone() if k == 0 else self.refinement_zone(k, dimension, parents))
            self.candidates.extend(children)
            parents = await self._barrier(k, dimension, children, parents)
            assert self.best is not None
            history.append(self.best.total)
            done = k + 1
            if self.s.target_score is not None and self.best.total >= self.s.target_score:
                stop_reason = f"target score {self.s.target_score} reached"
                break
            if self.s.patience is not None and len(history) > self.s.patience:
                if history[-1] - history[-1 - self.s.patience] < self.s.min_improvement:
                    stop_reason = f"no improvement of {self.s.min_improvement} in {self.s.patience} iterations"
                    break
        return Outcome(self.best, self.candidates, done, stop_reason)

    async def _barrier(self, k: int, dimension: str, children: list[Candidate],
                       parents: list[Candidate]) -> list[Candidate]:
        """Every lane of iteration k has settled: rank the pool, keep the top M, log the ranking."""
        if self._stop is not None:  # every lane has settled, so nothing paid for is lost
            raise self._stop
        succeeded = [c for c in children if c.status == "done"]
        if len(succeeded) < self.s.min_survivors:
            reasons = sorted({c.error or "" for c in children if c.status == "failed"})
            raise RunFailed(f"Only {len(succeeded)} of {len(children)} candidates of iteration {k} succeeded "
                            f"(at least {self.s.min_survivors} needed); last error: {reasons[-1] if reasons else 'none'}.")
        pool = succeeded + (parents if self.s.elitism else [])
        ranked, pairwise = await self.judging.rank(k, rank(pool), keep=self.best)
        survivors = ranked[: self.s.m]
        if pairwise is not None and (self.s.elitism or self.best is None):
            self.best = ranked[0]  # the pool holds the best so far, and it was among the finalists
        elif self.best is None or ranked[0].total > self.best.total:
            self.best = ranked[0]
        self.journal(Ranking(
            iteration=k, dimension=dimension, pool=[(c.id, c.total) for c in ranked], survivors=[c.id for c in survivors],
            failed=[c.id for c in children if c.status == "failed"], pairwise=pairwise,
            best=self.best.id if pairwise is not None else None,
        ))
        self.notify(Ranked(iteration=k, survivors=[c.id for c in survivors], best=self.best.id,
                           best_total=self.best.total))
        return survivors


def _raise(exc: BaseException) -> Any:
    raise exc

