"""Judging users can trust: checklist alignment, pairwise ranking in both orders, repeated judging.

A single 0-100 rating from a vision model is noisy, saturates high and favours whatever it is shown
first. This module holds the three remedies and the figures that show how far the judges agree:

* **Checklist alignment** (`alignment: checklist`). Once per run the LLM breaks the idea into yes/no
  questions (entities, attributes, relations, the whole scene), each with a weight and the questions it
  depends on. Each image is judged on them; a question counts only when it and everything it depends on
  is answered yes (the colour of a lighthouse that is not there is not a success), and alignment is the
  weighted share that counts, 0-100. A checklist that cannot be made after its retries (a small local
  model may never write a valid one) is not the end of the run: alignment is rated for the whole run
  instead, and an `alignment_fallback` event in the log says why.
* **Pairwise ranking** (`ranking: pairwise`). The pool is first ordered by its scores; its top F
  candidates (the finalists) are then compared two at a time by the vision model, every pair in both
  orders (A|B and B|A) so that a preference for the first image cancels: orders that agree give a win,
  orders that disagree a tie. Pairs are compared in rounds of growing rank distance (neighbours first);
  a pair whose winner already follows by transitivity from decisive results is skipped. Finalists are
  ordered by their Copeland score (wins + half the ties, implied wins counted as wins), ties broken by
  the score order. Per ranking the comparisons number at least F-1 and at most min(F(F-1)/2, max_pairs)
  pairs, two vision calls each (`pairwise_pair_bounds`).
* **Repeated judging** (`judge_samples: k`). Every judge answers k times under distinct step keys; the
  scores are averaged and their spread (population standard deviation) is kept per candidate.

The engine calls `Judging.score` for each candidate and `Judging.rank` at the barrier; the defaults
(rating, scores, one sample) make exactly the two judge calls per candidate that they always did.
"""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from beamsearch.checklist import checklist_score, effective, parse_checks, validate_checklist
from beamsearch.errors import CallError
from beamsearch.events import CHECKLIST_KEY, AlignmentFallback, Candidate, Event
from beamsearch.pairwise import Tournament, copeland, finalists_count, pairwise_pair_bounds
from beamsearch.progress import PairwiseVerdict
from beamsearch.together import all_settled

__all__ = ["CHECKLIST_KEY", "Judging", "JudgingSettings", "checklist_score", "effective", "finalists_count",
           "pairwise_pair_bounds", "parse_checks", "validate_checklist"]


@dataclass
class JudgingSettings:
    alignment: str = "rating"          # rating | checklist
    ranking: str = "scores"            # scores | pairwise
    judge_samples: int = 1
    finalists: int | None = None       # pairwise: how many of the score order are compared (None: max(4, 2M))
    max_pairs: int | None = None       # pairwise: at most this many pairs per ranking (None: all F(F-1)/2)


def judging_settings(settings: Any) -> JudgingSettings:
    """The judging part of the full settings (a plain dataclass, so the engine needs no pydantic)."""
    pairwise = getattr(settings, "pairwise", None)
    return JudgingSettings(
        alignment=getattr(settings, "alignment", "rating"), ranking=getattr(settings, "ranking", "scores"),
        judge_samples=getattr(settings, "judge_samples", 1),
        finalists=getattr(pairwise, "finalists", None), max_pairs=getattr(pairwise, "max_pairs", None),
    )


# --- repeated judging -----------------------------------------------------------------------------


def mean_and_spread(values: Sequence[float]) -> tuple[float, float]:
    """The average of k judge answers and their population standard deviation (0 for one answer)."""
    mean = statistics.fmean(values)
    return mean, (statistics.pstdev(values) if len(values) > 1 else 0.0)


def majority(lists: Sequence[Sequence[str]]) -> list[str]:
    """Items named by at least half of the answers, in order of first mention (one answer: itself)."""
    if len(lists) == 1:
        return list(lists[0])
    counts: dict[str, int] = {}
    for items in lists:
        for item in dict.fromkeys(items):
            counts[item] = counts.get(item, 0) + 1
    return [item for item, count in counts.items() if 2 * count >= len(lists)]


# --- orchestration --------------------------------------------------------------------------------


class Judging:
    """Scores one candidate and ranks a pool with the configured methods, through `steps`."""

    def __init__(self, settings: JudgingSettings, steps: Any, idea: str, alpha: float, m: int,
                 notify: Callable[[Event], None] | None = None, journal: Callable[[Event], None] | None = None) -> None:
        self.s = settings
        self.steps = steps
        self.idea = idea
        self.alpha = alpha
        self.m = m
        self.notify = notify or (lambda event: None)
        self.journal = journal or (lambda event: None)
        # the questions, or None when the checklist could not be made and alignment is rated instead
        self._checklist: asyncio.Future[list[dict[str, Any]] | None] | None = None

    # the checklist: made once per run, as soon as the run starts, awaited by every lane's judge

    def start(self, tasks: asyncio.TaskGroup) -> None:
        """Make the checklist (if one is used) in a child task of the run's task group: it is finished,
        or cancelled and awaited, before the run logs its end, so its paid answer is never lost."""
        if self.s.alignment == "checklist" and self._checklist is None:
            self._checklist = asyncio.get_running_loop().create_future()
            self._checklist.add_done_callback(lambda f: f.cancelled() or f.exception())
            tasks.create_task(self._make_checklist(self._checklist))

    async def _make_checklist(self, made: asyncio.Future[list[dict[str, Any]] | None]) -> None:
        """The checklist, or, when it cannot be made after its retries (its step failed: replay repeats
        that), None: the run rates alignment from then on and logs why, rather than failing every lane.
        A run-wide stop (budget, disk) is no such failure: lanes that wait for it stop with it."""
        try:
            made.set_result(await self.steps.checklist(self.idea))
        except asyncio.CancelledError:
            made.cancel()
            raise
        except CallError as exc:
            try:
                self.journal(AlignmentFallback(reason=exc.message))
            except Exception as failure:  # a full disk: the run is stopping, and its lanes with it
                made.set_exception(failure)
            else:
                made.set_result(None)
        except Exception as exc:  # lanes that wait for it fail with this; the task group is not torn down
            made.set_exception(exc)

    async def checklist(self) -> list[dict[str, Any]] | None:
        if self._checklist is None:
            raise RuntimeError("the checklist was not started (Judging.start)")
        return await asyncio.shield(self._checklist)

    # scoring one candidate

    async def rejudge(self, c: Any, k: int, lane: str) -> None:
        """Judge `c`'s image once more (under lane `lane` of iteration `k`) and keep the average of all its
        judgings: one noisy draw that won a ranking is a lucky draw, and more draws shrink the luck."""
        fresh = Candidate(id=c.id, iteration=c.iteration, index=c.index, image=c.image)
        await self.score(fresh, k, lane)
        if not c.judgements:
            c.judgements.append((c.alignment, c.aesthetic))
        c.judgements.append((fresh.alignment, fresh.aesthetic))
        c.alignment = round(statistics.fmean(a for a, _ in c.judgements), 3)
        c.aesthetic = round(statistics.fmean(e for _, e in c.judgements), 3)

    async def score(self, c: Any, k: int, lane: str) -> None:
        """Alignment and aesthetic, each from k judge answers made at once; fills in the candidate."""
        samples = range(self.s.judge_samples)
        if self.s.alignment == "checklist":
            alignment_calls = [self._checklist_judge(k, lane, c.image, s) for s in samples]
        else:
            alignment_calls = [self._call(self.steps.judge_alignment, k, lane, c.image, s) for s in samples]
        aesthetic_calls = [self._call(self.steps.judge_aesthetic, k, lane, c.image, s) for s in samples]
        answers = await all_settled(*alignment_calls, *aesthetic_calls)
        alignments, aesthetics = answers[: len(samples)], answers[len(samples):]
        if self.s.alignment == "checklist" and self._checklist is not None and self._checklist.result() is not None:
            self._apply_checklist(c, alignments)
        else:
            c.alignment, spread = mean_and_spread([a.score for a in alignments])
            c.alignment_notes = alignments[0].notes
            c.found, c.missing = majority([a.found for a in alignments]), majority([a.missing for a in alignments])
            if len(alignments) > 1:
                c.judge_samples["alignment"] = [a.score for a in alignments]
                c.judge_spread["alignment"] = round(spread, 3)
        c.aesthetic, spread = mean_and_spread([a.score for a in aesthetics])
        c.aesthetic_notes, c.weak = aesthetics[0].notes, majority([a.weak for a in aesthetics])
        if len(aesthetics) > 1:
            c.judge_samples["aesthetic"] = [a.score for a in aesthetics]
            c.judge_spread["aesthetic"] = round(spread, 3)
        c.alignment, c.aesthetic = round(c.alignment, 3), round(c.aesthetic, 3)

    async def _call(self, judge: Any, k: int, lane: str, image: str, sample: int) -> Any:
        if sample == 0:  # the first answer keeps the key (and the call) of plain single judging
            return await judge(k, lane, image, self.idea)
        return await judge(k, lane, image, self.idea, sample=sample)

    async def _checklist_judge(self, k: int, lane: str, image: str, sample: int) -> Any:
        questions = await self.checklist()
        if questions is None:  # the checklist could not be made: alignment is rated instead
            return await self._call(self.steps.judge_alignment, k, lane, image, sample)
        return await self.steps.judge_checklist(k, lane, image, self.idea, questions, sample=sample)

    def _apply_checklist(self, c: Any, answers: Sequence[dict[str, bool]]) -> None:
        questions = (self._checklist.result() if self._checklist is not None else None) or []
        counted = [effective(questions, a) for a in answers]
        scores = [checklist_score(questions, e) for e in counted]
        c.alignment, spread = mean_and_spread(scores)
        passes = {q["id"]: 2 * sum(e[q["id"]] for e in counted) >= len(counted) for q in questions}
        c.checks = passes
        by_id = {q["id"]: q for q in questions}
        # a failed question whose own dependencies pass is a root cause; the rest failed because of it
        roots = [q for q in questions if not passes[q["id"]] and all(passes[d] for d in q["depends_on"])]
        c.found = [q["question"] for q in questions if passes[q["id"]]]
        c.missing = [q["question"] for q in roots]
        blocked = [q for q in questions if not passes[q["id"]] and q not in roots]
        notes = f"Checklist: {sum(passes.values())} of {len(questions)} questions pass."
        if roots:
            notes += " Failed: " + "; ".join(q["question"] for q in roots) + "."
        if blocked:
            notes += " Not counted, because what they depend on failed: " + "; ".join(
                f"{q['question']} (needs {', '.join(by_id[d]['question'] for d in q['depends_on'])})" for q in blocked) + "."
        c.alignment_notes = notes
        if len(scores) > 1:
            c.judge_samples["alignment"] = scores
            c.judge_spread["alignment"] = round(spread, 3)

    # ranking a pool

    async def rank(self, k: int, ranked: list[Any], keep: Any = None) -> tuple[list[Any], dict[str, Any] | None]:
        """The pool in the order survivors are taken: by scores, or with its finalists re-ordered by
        pairwise comparison. `keep` (the best so far, when the pool holds it) is always a finalist, so
        that the best never gets worse. Returns the order and, for pairwise, the record for the ranking."""
        if self.s.ranking != "pairwise" or len(ranked) < 2:
            return ranked, None
        f = finalists_count(len(ranked), self.m, self.s.finalists)
        finals = ranked[:f]
        if keep is not None and keep in ranked and keep not in finals:
            finals = finals[:-1] + [keep]
            ranked = finals + [c for c in ranked if c not in finals]
        ids = [c.id for c in finals]
        tournament = Tournament()
        comparisons: list[dict[str, Any]] = []
        skipped: list[dict[str, Any]] = []
        used, cap = 0, self.s.max_pairs
        for gap in range(1, f):
            todo = []
            for i in range(f - gap):
                a, b = finals[i], finals[i + gap]
                if tournament.implies(a.id, b.id) or tournament.implies(b.id, a.id):
                    skipped.append({"pair": [a.id, b.id], "implied": a.id if tournament.implies(a.id, b.id) else b.id})
                else:
                    todo.append((a, b))
            if cap is not None:
                todo = todo[: max(0, cap - used)]
            if not todo:
                if cap is not None and used >= cap:
                    break
                continue
            used += len(todo)
            results = await all_settled(*(self._compare(k, a, b) for a, b in todo))
            for result in results:
                comparisons.append(result)
                if result.get("winner"):
                    tournament.add_win(result["winner"], result["loser"])
        points = copeland(ids, comparisons, skipped)
        position = {c.id: i for i, c in enumerate(finals)}
        reordered = sorted(finals, key=lambda c: (-points[c.id], position[c.id]))
        record = {"finalists": ids, "comparisons": comparisons, "skipped": skipped,
                  "copeland": points, "order": [c.id for c in reordered], "pairs": used}
        return reordered + ranked[f:], record

    async def _compare(self, k: int, a: Any, b: Any) -> dict[str, Any]:
        """One pair in both orders at once. Agreeing orders name a winner; disagreeing ones are a tie;
        a pair that cannot be judged simply gives no result (a run-wide stop still stops the run)."""
        try:
            first, second = await all_settled(self.steps.judge_pairwise(k, a, b, self.idea, self.alpha),
                                              self.steps.judge_pairwise(k, b, a, self.idea, self.alpha))
        except CallError as exc:
            return {"pair": [a.id, b.id], "error": exc.message}
        ab = a.id if first == "first" else b.id
        ba = b.id if second == "first" else a.id
        result: dict[str, Any] = {"pair": [a.id, b.id], "ab": ab, "ba": ba, "agree": ab == ba}
        if ab == ba:
            result["winner"], result["loser"] = ab, (b.id if ab == a.id else a.id)
        self.notify(PairwiseVerdict(iteration=k, **result))
        return result
