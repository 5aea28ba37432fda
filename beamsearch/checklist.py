"""Checklist alignment: the idea as weighted yes/no questions with dependencies, and how a judge's
answers become a 0-100 alignment (a question counts only when it and everything it depends on is yes)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from beamsearch.errors import InvalidAnswer

MAX_QUESTIONS = 40



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
