"""`summary.json`, derived from the event log alone (through its one fold, `view.RunView`), so it can
always be rebuilt (`show`, `report`), and the other derived files: `best.png` and `report.html`."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from beamsearch.events import PairwiseRecord
from beamsearch.files import confined, outside_reason
from beamsearch.roles import ROLES
from beamsearch.store import RunStore
from beamsearch.view import RunView, fold


def _candidate_data(view: RunView) -> dict[str, dict[str, Any]]:
    return {cid: c.model_dump(mode="json", exclude={"type", "ts"}) for cid, c in view.candidates.items()}


def _iterations(view: RunView, candidates: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Per ranked iteration: its ranking, the best so far, and the best and median of its own children."""
    iterations = []
    for k, ranking in sorted(view.rankings.items()):
        totals = [c["total"] for c in candidates.values() if c["iteration"] == k]
        pool = [list(entry) for entry in ranking.pool]
        iterations.append({
            "iteration": k, "dimension": ranking.dimension or None, "survivors": list(ranking.survivors),
            "pool": pool, "failed": list(ranking.failed),
            "best_id": pool[0][0] if pool else None, "best_total": pool[0][1] if pool else None,
            "children_best": max(totals) if totals else None,
            "children_median": statistics.median(totals) if totals else None,
        })
        if ranking.pairwise is not None:
            iterations[-1]["pairwise_results"] = pairwise_results(ranking.pairwise)
    return iterations


def pairwise_results(record: PairwiseRecord) -> dict[str, dict[str, Any]]:
    """Per finalist of a pairwise ranking, what decided its place: its Copeland points (what the order
    follows), its wins, ties and losses judged in both orders, and the wins and losses implied by
    transitivity instead of judged."""
    results = {cid: {"copeland": record.copeland.get(cid, 0.0), "wins": 0, "ties": 0, "losses": 0,
                     "implied_wins": 0, "implied_losses": 0} for cid in record.finalists}
    for comparison in record.comparisons:
        if comparison.winner in results and comparison.loser in results:
            results[comparison.winner]["wins"] += 1
            results[comparison.loser]["losses"] += 1
        elif comparison.agree is False:
            for cid in comparison.pair:
                if cid in results:
                    results[cid]["ties"] += 1
    for skipped in record.skipped:
        winner = skipped.get("implied")
        for cid in skipped.get("pair") or []:
            if cid in results:
                results[cid]["implied_wins" if cid == winner else "implied_losses"] += 1
    return results


def build_summary(run_document: dict[str, Any], view: RunView) -> dict[str, Any]:
    """Everything worth knowing about a run, as plain JSON data."""
    settings = run_document.get("settings", {})
    candidates = _candidate_data(view)
    iterations = _iterations(view, candidates)
    best = view.best()
    judging = judging_figures(settings, view, candidates)
    for entry in iterations:
        entry.update(judging["per_iteration"].get(entry["iteration"], {}))
    usage = {service: {"calls": u.calls, "cost_usd": round(u.cost_usd, 6), "input_tokens": u.input_tokens,
                       "output_tokens": u.output_tokens, "images": u.images, "attempts": u.attempts}
             for service, u in view.usage.items()}
    return {
        "prompt": settings.get("prompt"),
        "status": view.status,
        "reason": view.reason,
        "provider": {role: settings.get(role, {}).get("provider") or settings.get("provider") for role in ROLES},
        "models": models(settings, view),
        "search": {k: settings.get(k) for k in ("n", "m", "iterations", "alpha", "elitism", "seed")},
        "best": candidates[best.id] if best else None,
        "lineage": view.lineage(best.id if best else None),
        "iterations": iterations,
        "candidates": [candidates[c] for c in sorted(candidates, key=lambda c: view.candidates[c].order)],
        "failed": [f.model_dump(mode="json") for f in view.failed_lanes.values()],
        "skipped": [f.model_dump(mode="json", exclude={"type", "ts"}) for f in view.skipped_lanes.values()],
        "usage": usage,
        "cost_usd": round(view.spent, 6),  # the one spend figure: the sum of the log's costs
        "judging": judging["overall"],
        "warnings": [view.fallback.message] if view.fallback is not None else [],
    }


def models(settings: dict[str, Any], view: RunView) -> dict[str, dict[str, Any]]:
    """Who served each role and whether its cost is known: `priced` is False for a model no price table
    knew (its calls were counted as $0), None when the log does not say (runs made before it was kept)."""
    named = {}
    for role in ROLES:
        section = settings.get(role) if isinstance(settings.get(role), dict) else {}
        provider = section.get("provider") or settings.get("provider") or "openai"
        model = f"sim-{role}" if provider == "sim" else section.get("model")
        priced = None if view.unpriced is None else model not in view.unpriced
        named[role] = {"provider": provider, "model": model, "priced": priced}
    return named


def judging_figures(settings: dict[str, Any], view: RunView, candidates: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """How far the judges agree: pairwise orders that agreed, the spread of repeated judging, the share
    of checklist questions failed; overall and per iteration (see beamsearch/judging.py)."""
    overall: dict[str, Any] = {
        "alignment": settings.get("alignment", "rating"), "ranking": settings.get("ranking", "scores"),
        "judge_samples": settings.get("judge_samples", 1), "checklist": view.checklist,
    }
    if view.fallback is not None:
        overall["alignment_fallback"] = view.fallback.message
    per_iteration: dict[int, dict[str, Any]] = {}
    done = [c for c in candidates.values() if c.get("status") == "done"]
    spreads = {judge: [c["judge_spread"][judge] for c in done if judge in (c.get("judge_spread") or {})]
               for judge in ("alignment", "aesthetic")}
    if any(spreads.values()):
        overall["judge_spread"] = {judge: {"mean": round(statistics.fmean(v), 3), "max": max(v)}
                                   for judge, v in spreads.items() if v}
    if view.checklist:
        _checklist_figures(done, overall, per_iteration)
    _pairwise_figures(view, overall, per_iteration)
    return {"overall": overall, "per_iteration": per_iteration}


def _checklist_figures(done: list[dict[str, Any]], overall: dict[str, Any], per_iteration: dict[int, dict[str, Any]]) -> None:
    failed = total = 0
    for k in sorted({c["iteration"] for c in done}):
        checks = [ok for c in done if c["iteration"] == k for ok in (c.get("checks") or {}).values()]
        if checks:
            per_iteration.setdefault(k, {})["checklist_failed_share"] = round(checks.count(False) / len(checks), 4)
            failed, total = failed + checks.count(False), total + len(checks)
    overall["checklist_failed_share"] = round(failed / total, 4) if total else None
    overall["checklist_failed_share_by_iteration"] = {k: v["checklist_failed_share"] for k, v in per_iteration.items()}


def _pairwise_figures(view: RunView, overall: dict[str, Any], per_iteration: dict[int, dict[str, Any]]) -> None:
    judged = compared = agreed = first_wins = 0
    for k, ranking in sorted(view.rankings.items()):
        record = ranking.pairwise
        if not record:
            continue
        verdicts = [c for c in record.comparisons if c.agree is not None]
        agreeing = sum(1 for c in verdicts if c.agree)
        firsts = sum((c.ab == c.pair[0]) + (c.ba == c.pair[1]) for c in verdicts)
        per_iteration.setdefault(k, {})["pairwise"] = {
            "pairs": len(verdicts), "orders_agreed": agreeing,
            "agreement": round(agreeing / len(verdicts), 4) if verdicts else None,
            "skipped_by_transitivity": len(record.skipped), "calls": 2 * record.pairs,
        }
        judged, compared = judged + 2 * len(verdicts), compared + len(verdicts)
        agreed, first_wins = agreed + agreeing, first_wins + firsts
    if compared:
        overall["pairwise"] = {"pairs": compared, "orders_agreed": agreed, "agreement": round(agreed / compared, 4),
                               "first_shown_won": round(first_wins / judged, 4)}


def write_derived(store: RunStore, view: RunView | None = None) -> dict[str, Any]:
    """summary.json, best.png and report.html, all rebuilt from the log (or its fold, `view`)."""
    summary = build_summary(store.read_run_file(), view if view is not None else fold(store.read_events()))
    store.write_json("summary.json", summary)
    best = summary.get("best")
    if best and best.get("image") and outside_reason(store.path, best["image"]) is None \
            and confined(store.path, best["image"]).is_file():
        store.copy_file(best["image"], f"best{Path(best['image']).suffix}")
    from beamsearch.report import write_report

    write_report(store, summary)
    return summary
