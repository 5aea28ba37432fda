"""`summary.json`, derived from the event log alone, so it can always be rebuilt (`show`, `report`)."""

from __future__ import annotations

import statistics
from typing import Any


def best_of(candidates: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    done = [c for c in candidates.values() if c.get("status") == "done"]
    if not done:
        return None
    return min(done, key=lambda c: (-c["total"], c["iteration"], c["index"]))


def lineage(candidates: dict[str, dict[str, Any]], candidate_id: str | None) -> list[str]:
    """The family line of a candidate back to iteration 0, oldest first."""
    chain: list[str] = []
    while candidate_id is not None and candidate_id in candidates and candidate_id not in chain:
        chain.append(candidate_id)
        candidate_id = candidates[candidate_id].get("parent")
    return list(reversed(chain))


def build_summary(run_document: dict[str, Any], events: list[dict[str, Any]]) -> dict[str, Any]:
    settings = run_document.get("settings", {})
    candidates: dict[str, dict[str, Any]] = {}
    failed: dict[str, dict[str, Any]] = {}
    rankings: dict[int, dict[str, Any]] = {}
    usage: dict[str, dict[str, Any]] = {}
    status, reason = "running", ""
    for event in events:
        kind = event.get("type")
        if kind == "candidate":  # the latest word on a lane wins: a resume may finish a lane that failed
            candidates[event["id"]] = {k: v for k, v in event.items() if k not in ("type", "ts")}
            failed.pop(event["id"], None)
        elif kind == "lane_failed":
            failed[event["id"]] = event
            candidates.pop(event["id"], None)
        elif kind == "ranking":
            rankings[event["iteration"]] = event
        elif kind == "step":
            service = usage.setdefault(event["service"], {"calls": 0, "cost_usd": 0.0, "input_tokens": 0,
                                                         "output_tokens": 0, "images": 0, "attempts": 0})
            service["calls"] += 1
            service["attempts"] += event.get("attempts", 1)
            service["cost_usd"] += event.get("cost", 0.0)
            for field in ("input_tokens", "output_tokens", "images"):
                service[field] += (event.get("usage") or {}).get(field, 0)
        elif kind == "run_finished":
            status, reason = event.get("status", "done"), event.get("reason", "")
        elif kind == "run_started":
            status, reason = "running", ""
    for service in usage.values():
        service["cost_usd"] = round(service["cost_usd"], 6)
    iterations = []
    for k in sorted(rankings):
        event = rankings[k]
        children = [c for c in candidates.values() if c["iteration"] == k]
        totals = [c["total"] for c in children]
        iterations.append({
            "iteration": k, "dimension": event.get("dimension"), "survivors": event["survivors"],
            "pool": event["pool"], "failed": event.get("failed", []),
            "best_id": event["pool"][0][0] if event["pool"] else None,
            "best_total": event["pool"][0][1] if event["pool"] else None,
            "children_best": max(totals) if totals else None,
            "children_median": statistics.median(totals) if totals else None,
        })
    best = best_of(candidates)
    pairwise_best = [r["best"] for _, r in sorted(rankings.items()) if r.get("best") in candidates]
    if pairwise_best:  # pairwise ranking decides the best by comparison, not by the highest total
        best = candidates[pairwise_best[-1]]
    judging = judging_figures(settings, events, candidates, rankings)
    for entry in iterations:
        entry.update(judging["per_iteration"].get(entry["iteration"], {}))
    return {
        "prompt": settings.get("prompt"),
        "status": status,
        "reason": reason,
        "provider": {role: settings.get(role, {}).get("provider") or settings.get("provider") for role in ("text", "image", "vision")},
        "search": {k: settings.get(k) for k in ("n", "m", "iterations", "alpha", "elitism", "seed")},
        "best": best,
        "lineage": lineage(candidates, best["id"] if best else None),
        "iterations": iterations,
        "candidates": sorted(candidates.values(), key=lambda c: (c["iteration"], c["index"])),
        "failed": list(failed.values()),
        "usage": usage,
        "cost_usd": round(sum(s["cost_usd"] for s in usage.values()), 6),
        "judging": judging["overall"],
    }


def judging_figures(settings: dict[str, Any], events: list[dict[str, Any]], candidates: dict[str, dict[str, Any]],
                    rankings: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """How far the judges agree: pairwise orders that agreed, the spread of repeated judging, the share
    of checklist questions failed; overall and per iteration (see beamsearch/judging.py)."""
    checklist = next((e["result"]["questions"] for e in events
                      if e.get("type") == "step" and e.get("key") == "run/checklist"), None)
    overall: dict[str, Any] = {
        "alignment": settings.get("alignment", "rating"), "ranking": settings.get("ranking", "scores"),
        "judge_samples": settings.get("judge_samples", 1), "checklist": checklist,
    }
    per_iteration: dict[int, dict[str, Any]] = {}
    done = [c for c in candidates.values() if c.get("status") == "done"]
    spreads = {judge: [c["judge_spread"][judge] for c in done if judge in (c.get("judge_spread") or {})]
               for judge in ("alignment", "aesthetic")}
    if any(spreads.values()):
        overall["judge_spread"] = {judge: {"mean": round(statistics.fmean(v), 3), "max": max(v)}
                                   for judge, v in spreads.items() if v}
    if checklist:
        failed = total = 0
        for k in sorted({c["iteration"] for c in done}):
            checks = [ok for c in done if c["iteration"] == k for ok in (c.get("checks") or {}).values()]
            if checks:
                per_iteration.setdefault(k, {})["checklist_failed_share"] = round(checks.count(False) / len(checks), 4)
                failed, total = failed + checks.count(False), total + len(checks)
        overall["checklist_failed_share"] = round(failed / total, 4) if total else None
        by_iteration = {k: v["checklist_failed_share"] for k, v in per_iteration.items()}
        overall["checklist_failed_share_by_iteration"] = by_iteration
    judged = compared = agreed = first_wins = 0
    for k, ranking in sorted(rankings.items()):
        record = ranking.get("pairwise")
        if not record:
            continue
        verdicts = [c for c in record.get("comparisons", []) if "agree" in c]
        agreeing = sum(1 for c in verdicts if c["agree"])
        firsts = sum((c["ab"] == c["pair"][0]) + (c["ba"] == c["pair"][1]) for c in verdicts)
        per_iteration.setdefault(k, {})["pairwise"] = {
            "pairs": len(verdicts), "orders_agreed": agreeing,
            "agreement": round(agreeing / len(verdicts), 4) if verdicts else None,
            "skipped_by_transitivity": len(record.get("skipped", [])), "calls": 2 * record.get("pairs", 0),
        }
        judged, compared, agreed, first_wins = judged + 2 * len(verdicts), compared + len(verdicts), agreed + agreeing, first_wins + firsts
    if compared:
        overall["pairwise"] = {"pairs": compared, "orders_agreed": agreed, "agreement": round(agreed / compared, 4),
                               "first_shown_won": round(first_wins / judged, 4)}
    return {"overall": overall, "per_iteration": per_iteration}
