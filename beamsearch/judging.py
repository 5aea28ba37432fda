"""Judging users can trust: checklist alignment, pairwise ranking in both orders, repeated judging.

A single 0-100 rating from a vision model is noisy, saturates high and favours whatever it is shown
first. This module holds the three remedies and the figures that show how far the judges agree:

* **Checklist alignment** (`alignment: checklist`). Once per run the LLM breaks the idea into yes/no
  questions (entities, attributes, relations, the whole scene), each with a weight and the questions it
  depends on. Each image is judged on them; a question counts only when it and everything it depends on
  is answered yes (the colour of a lighthouse that is not there is not a success), and alignment is the
  weighted share that counts, 0-100.
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

from beamsearch.errors import CallError, InvalidAnswer
from beamsearch.events import CHECKLIST_KEY, Event, PairwiseVerdict
from beamsearch.together import all_settled

MAX_QUESTIONS = 40
__all__ = ["CHECKLIST_KEY", "Judging", "JudgingSettings"]


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


# --- checklist ------------------------------------------------------------------------------------


def validate_checklist(questions: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Clean a checklist and refuse one that cannot be scored (an InvalidAnswer, so the gate retries):
    no questions, too many, duplicate ids, dependencies on unknown ids or on themselves, cycles."""
    if not questions:
        raise InvalidAnswer("the checklist has no questions")
    if len(questions) > MAX_QUESTIONS:
        raise InvalidAnswer(f"the checklist has {len(questions)} questions (at most {MAX_QUESTIONS})")
    cleaned: list[dict[str, Any]] = []
    seen: set[str] = set()
    for q in questions:
        qid = str(q["id"]).strip()
        if not qid or qid in seen:
            raise InvalidAnswer(f"the checklist repeats or omits a question id ({qid!r})")
        seen.add(qid)
        cleaned.append({"id": qid, "question": str(q["question"]).strip(), "category": q["category"],
                        "element": str(q.get("element", "")).strip(), "weight": float(q["weight"]),
                        "depends_on": list(dict.fromkeys(str(d).strip() for d in q.get("depends_on", [])))})
    for q in cleaned:
        for dep in q["depends_on"]:
            if dep == q["id"] or dep not in seen:
                raise InvalidAnswer(f"question {q['id']} depends on {dep!r}, which is not another question")
    _topological(cleaned)
    return cleaned


def _topological(questions: Sequence[dict[str, Any]]) -> list[str]:
    """Ids in an order where every question follows what it depends on; a cycle is an invalid answer."""
    deps = {q["id"]: q["depends_on"] for q in questions}
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(qid: str) -> None:
        if state.get(qid) == 2:
            return
        if state.get(qid) == 1:
            raise InvalidAnswer(f"the checklist's dependencies form a cycle through {qid}")
        state[qid] = 1
        for dep in deps[qid]:
            visit(dep)
        state[qid] = 2
        order.append(qid)

    for qid in deps:
        visit(qid)
    return order


def parse_checks(questions: Sequence[dict[str, Any]], answers: Sequence[dict[str, Any]]) -> dict[str, bool]:
    """The judge's yes/no per question id; every question must be answered (unknown ids are ignored)."""
    given = {str(a["id"]).strip(): a["answer"] == "yes" for a in answers}
    absent = [q["id"] for q in questions if q["id"] not in given]
    if absent:
        raise InvalidAnswer(f"the judge did not answer question{'s' if len(absent) > 1 else ''} {', '.join(absent[:5])}")
    return {q["id"]: given[q["id"]] for q in questions}


def effective(questions: Sequence[dict[str, Any]], answers: dict[str, bool]) -> dict[str, bool]:
    """A question counts as yes only if it is answered yes and everything it depends on counts."""
    deps = {q["id"]: q["depends_on"] for q in questions}
    result: dict[str, bool] = {}
    for qid in _topological(questions):
        result[qid] = answers.get(qid, False) and all(result[d] for d in deps[qid])
    return result


def checklist_score(questions: Sequence[dict[str, Any]], counted: dict[str, bool]) -> float:
    """The weighted share of questions that count, 0-100."""
    total = sum(q["weight"] for q in questions)
    passed = sum(q["weight"] for q in questions if counted.get(q["id"]))
    return round(100.0 * passed / total, 2) if total else 0.0


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


# --- pairwise -------------------------------------------------------------------------------------


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


# --- orchestration --------------------------------------------------------------------------------


class Judging:
    """Scores one candidate and ranks a pool with the configured methods, through `steps`."""

    def __init__(self, settings: JudgingSettings, steps: Any, idea: str, alpha: float, m: int,
                 notify: Callable[[Event], None] | None = None) -> None:
        self.s = settings
        self.steps = steps
        self.idea = idea
        self.alpha = alpha
        self.m = m
        self.notify = notify or (lambda event: None)
        self._checklist: asyncio.Future[list[dict[str, Any]]] | None = None

    # the checklist: made once per run, as soon as the run starts, awaited by every lane's judge

    def start(self, tasks: asyncio.TaskGroup) -> None:
        """Make the checklist (if one is used) in a child task of the run's task group: it is finished,
        or cancelled and awaited, before the run logs its end, so its paid answer is never lost."""
        if self.s.alignment == "checklist" and self._checklist is None:
            self._checklist = asyncio.get_running_loop().create_future()
            self._checklist.add_done_callback(lambda f: f.cancelled() or f.exception())
            tasks.create_task(self._make_checklist(self._checklist))

    async def _make_checklist(self, made: asyncio.Future[list[dict[str, Any]]]) -> None:
        try:
            made.set_result(await self.steps.checklist(self.idea))
        except asyncio.CancelledError:
            made.cancel()
            raise
        except Exception as exc:  # lanes that wait for it fail with this; the task group is not torn down
            made.set_exception(exc)

    async def checklist(self) -> list[dict[str, Any]]:
        if self._checklist is None:
            raise RuntimeError("the checklist was not started (Judging.start)")
        return await asyncio.shield(self._checklist)

    # scoring one candidate

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
        if self.s.alignment == "checklist":
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

    async def _checklist_judge(self, k: int, lane: str, image: str, sample: int) -> dict[str, bool]:
        questions = await self.checklist()
        return await self.steps.judge_checklist(k, lane, image, self.idea, questions, sample=sample)

    def _apply_checklist(self, c: Any, answers: Sequence[dict[str, bool]]) -> None:
        questions = self._checklist.result() if self._checklist is not None else []
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
