"""The beam search: zone functions that fan lanes out, and the ranking barrier where they meet.

Each candidate streams through its own `process_candidate` pipeline (combine -> image -> two judges in
parallel); nothing waits for another lane except the ranking at the end of an iteration. In refinement
iterations each parent's children start the moment that parent's critique is ready.

No picture is paid for twice (`variants`): a lane whose WHAT/HOW repeats one already made is asked for
another variant, or skipped. Kept parents are judged again at the next ranking, and the final survivors
once more, so a lucky first score does not win by staying (`rejudge`).

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
from beamsearch.events import Candidate, Event, FinalCheck, LaneFailed, Ranking, now
from beamsearch.judging import Judging, JudgingSettings
from beamsearch.progress import IterationStarted, Ranked, StageChanged
from beamsearch.schedule import children_per_parent, dimension_for, dimension_of, dimensions
from beamsearch.together import all_settled
from beamsearch.variants import Ledger, Turn, normal


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
    refine: str = "alternate"
    variants: int | None = None  # None: repeats are not checked (the seed's behaviour)
    rejudge: bool = False


@dataclass
class Outcome:
    best: Candidate | None
    candidates: list[Candidate]
    iterations_done: int
    stop_reason: str


class StepsLike(Protocol):
    async def expand(self, iteration: int, lane: str, dimension: str, idea: str, attempt: int = 0,
                     avoid: list[str] | None = None) -> str: ...
    async def combine(self, iteration: int, lane: str, what: str, how: str, attempt: int = 0) -> str: ...
    async def render(self, iteration: int, lane: str, candidate_id: str, prompt: str, labels: dict[str, str]) -> Any: ...
    async def judge_alignment(self, iteration: int, lane: str, image: str, idea: str) -> Any: ...
    async def judge_aesthetic(self, iteration: int, lane: str, image: str, idea: str) -> Any: ...
    async def critique(self, iteration: int, parent: Candidate, dimension: str, idea: str) -> Any: ...
    async def refine(self, iteration: int, lane: str, dimension: str, parent: Candidate, critique: Any, idea: str,
                     variant: int | None = None, siblings: int = 1, attempt: int = 0,
                     avoid: list[str] | None = None) -> str: ...
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
        self.ledger = Ledger(settings.variants, journal)
        self.width = max(2, len(str(settings.n - 1)))
        self.candidates: list[Candidate] = []
        self.best: Candidate | None = None
        self._stop: BeamsearchError | None = None
        self.judging = Judging(settings.judging, steps, settings.idea, settings.alpha, settings.m, self.notify,
                               journal)

    def candidate_id(self, iteration: int, index: int) -> str:
        return f"i{iteration}c{index:0{self.width}d}"

    def _stage(self, candidate: Candidate, stage: str, **extra: Any) -> None:
        self.notify(StageChanged(id=candidate.id, parent=candidate.parent, iteration=candidate.iteration, stage=stage,
                                 **extra))

    # --- one lane ---------------------------------------------------------------------------------

    async def process_candidate(self, c: Candidate, turn: Turn, ask: Any, changed: tuple[str, ...]) -> Candidate:
        """(ask for the pair until it is new) -> combine -> image -> alignment and aesthetic judged in parallel."""
        lane, k = f"c{c.index:0{self.width}d}", c.iteration

        async def combine(attempt: int) -> str:
            self._stage(c, "combine", what=c.what, how=c.how)
            return await self.steps.combine(k, lane, c.what, c.how, attempt=attempt)

        prompt = await self.ledger.settle(turn, ask, combine, changed)
        if prompt is None:  # every variant repeated a prompt already made: nothing to render
            self._stage(c, "skipped", error=c.error)
            return c
        c.prompt = prompt
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
        await self._annotate(c)
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

        async def lane(c: Candidate, turn: Turn) -> None:
            name = f"c{c.index:0{self.width}d}"
            self._stage(c, "expand")

            async def ask(attempt: int, avoid: dict[str, list[str]]) -> None:
                if attempt == 0:
                    c.what, c.how = await all_settled(self.steps.expand(0, name, "what", self.s.idea),
                                                      self.steps.expand(0, name, "how", self.s.idea))
                else:  # a repeat: another style for the same content
                    c.how = await self.steps.expand(0, name, "how", self.s.idea, attempt=attempt, avoid=avoid["how"])

            await self.process_candidate(c, turn, ask, ("how",))

        lanes = [Candidate(id=self.candidate_id(0, j), iteration=0, index=j) for j in range(self.s.n)]
        turns = [self.ledger.join("expand", c) for c in lanes]  # any two lanes may draft the same pair
        return list(await all_settled(*(self._guarded(c, lambda c=c, t=t: lane(c, t)) for c, t in zip(lanes, turns, strict=True))))

    async def refinement_zone(self, k: int, parents: list[Candidate]) -> list[Candidate]:
        """Iteration k: one critique per parent; the moment it is ready, that parent's children start.
        Kept parents are judged again meanwhile, so they meet their children on an even footing."""
        counts = children_per_parent(self.s.n, len(parents))
        families, index = [], 0
        for parent, count in zip(parents, counts, strict=True):
            kids = [Candidate(id=self.candidate_id(k, index + j), iteration=k, index=index + j, parent=parent.id)
                    for j in range(count)]
            index += count
            refined = dimension_for(self.s.refine, k, parent)
            turns = [self.ledger.join(_claim_group(refined, parent), c) for c in kids]
            families.append(self._family(k, refined, parent, kids, turns))
        rejudged = [self._rejudge(p, k, f"keep-{p.id}") for p in parents] if self.s.rejudge and self.s.elitism else []
        settled = await all_settled(*families, *rejudged)
        return [c for family in settled[: len(families)] for c in family]

    async def _family(self, k: int, refined: str, parent: Candidate, kids: list[Candidate],
                      turns: list[Turn]) -> list[Candidate]:
        for c in kids:
            self._stage(c, "critique")
        try:
            critique = await self.steps.critique(k, parent, refined, self.s.idea)
        except BeamsearchError as exc:
            self._stop = self._stop or exc
            for c, turn in zip(kids, turns, strict=True):
                c.status, c.error = "stopped", exc.message
                turn.settle(None)
            return kids
        except CallError as exc:
            for c, turn in zip(kids, turns, strict=True):
                turn.settle(None)
                await self._guarded(c, lambda exc=exc: _raise(exc))
            return kids

        async def lane(c: Candidate, variant: int, turn: Turn) -> None:
            name = f"c{c.index:0{self.width}d}"
            self._stage(c, "refine")
            c.critique, c.refined = critique.text, refined
            hint = variant if self.s.variants is not None else None
            changed = dimensions(refined)

            async def ask(attempt: int, avoid: dict[str, list[str]]) -> None:
                texts = await all_settled(*(self.steps.refine(k, name, d, parent, critique, self.s.idea, variant=hint,
                                                              siblings=len(kids), attempt=attempt, avoid=avoid[d])
                                            for d in changed))
                new = dict(zip(changed, texts, strict=True))
                c.what, c.how = new.get("what", parent.what), new.get("how", parent.how)

            await self.process_candidate(c, turn, ask, changed)

        return list(await all_settled(*(self._guarded(c, lambda c=c, j=j, t=t: lane(c, j, t))
                                        for j, (c, t) in enumerate(zip(kids, turns, strict=True)))))

    async def _rejudge(self, c: Candidate, k: int, lane: str) -> None:
        """Judge a scored candidate once more and average; a judging that fails leaves its score as it was."""
        try:
            await self.judging.rejudge(c, k, lane)
        except CallError:
            return
        c.total = round(total_score(c.alignment, c.aesthetic, self.s.alpha), 4)
        await self._annotate(c)
        c.ts = now()
        self.journal(c)

    async def _annotate(self, c: Candidate) -> None:
        await self.steps.annotate(c.image, {"beamsearch:alignment": str(c.alignment), "beamsearch:aesthetic": str(c.aesthetic),
                                            "beamsearch:total": str(c.total)})

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
            self.notify(IterationStarted(iteration=k, dimension=dimension_of(k, self.s.refine), lanes=self.s.n))
            children = await (self.expansion_zone() if k == 0 else self.refinement_zone(k, parents))
            self.candidates.extend(children)
            parents = await self._barrier(k, children, parents)
            self.ledger.close_iteration()
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
        await self._final_check(done, parents)
        return Outcome(self.best, self.candidates, done, stop_reason)

    async def _barrier(self, k: int, children: list[Candidate], parents: list[Candidate]) -> list[Candidate]:
        """Every lane of iteration k has settled: rank the pool, keep the top M, log the ranking."""
        if self._stop is not None:  # every lane has settled, so nothing paid for is lost
            raise self._stop
        succeeded = [c for c in children if c.status == "done"]
        pool = succeeded + (parents if self.s.elitism else [])
        failed = [c for c in children if c.status == "failed"]
        if len(succeeded) < self.s.min_survivors and (failed or not pool):  # repeats alone do not sink a run
            reasons = sorted({c.error or "" for c in failed})
            raise RunFailed(f"Only {len(succeeded)} of {len(children)} candidates of iteration {k} succeeded "
                            f"(at least {self.s.min_survivors} needed); last error: {reasons[-1] if reasons else 'none'}.")
        ranked, pairwise = await self.judging.rank(k, rank(pool), keep=self.best)
        survivors = ranked[: self.s.m]
        if pairwise is not None and (self.s.elitism or self.best is None):
            self.best = ranked[0]  # the pool holds the best so far, and it was among the finalists
        elif self.best is None or self.s.elitism or ranked[0].total > self.best.total:
            self.best = ranked[0]  # with elitism the pool holds the best so far, judged again
        self.journal(Ranking(
            iteration=k, dimension=dimension_of(k, self.s.refine), pool=[(c.id, c.total) for c in ranked],
            survivors=[c.id for c in survivors], failed=[c.id for c in failed],
            skipped=[c.id for c in children if c.status == "skipped"], pairwise=pairwise, best=self.best.id,
        ))
        self.notify(Ranked(iteration=k, survivors=[c.id for c in survivors], best=self.best.id,
                           best_total=self.best.total))
        return survivors

    async def _final_check(self, k: int, survivors: list[Candidate]) -> None:
        """The last ranking's survivors judged only once are judged again, and the answer is the best of
        them (and of the best so far) by the average: the top of a noisy pool is the luckiest draw. These
        are the very judgings the survivors would get as kept parents of a next iteration (same keys), so
        a finished run that is extended later replays them instead of paying for them twice."""
        if not self.s.rejudge or self.s.judging.ranking == "pairwise" or self.best is None:
            return
        pool = survivors + ([self.best] if self.best not in survivors else [])
        await all_settled(*(self._rejudge(c, k, f"keep-{c.id}") for c in pool if len(c.judgements) <= 1))
        ranked = rank(pool)
        self.best = ranked[0]
        self.journal(FinalCheck(pool=[(c.id, c.total) for c in ranked], best=self.best.id))


def _claim_group(refined: str, parent: Candidate) -> object:
    """Children that could make the same pair: those that refine the same dimension and keep the same
    text of the other (the parent's), or, refining both, the same parent's children."""
    if refined == "what":
        return ("what", normal(parent.how))
    if refined == "how":
        return ("how", normal(parent.what))
    return ("both", parent.id)


def _raise(exc: BaseException) -> Any:
    raise exc

