"""What one finished search says about quality, read from its run folder's event log (issue 12).

Everything here is read from `events.jsonl` and the images' recorded digests, never from engine
internals, so the same code measures today's engine and a later one (re-judged parents, skipped
repeats, other refinement schedules):

* the hidden truth of every candidate: the simulator records `sim_truth` (the pixels measured against
  the idea, before any judge noise) in the meta of each judge step; true total = alpha * alignment +
  (1 - alpha) * 10 * aesthetic, as the ranking weighs them;
* the best-so-far after each iteration, by the judges' totals (the candidate the run would return if it
  stopped there), with its judge total and its true total;
* repeated renders: a child (iteration >= 1) whose combined prompt equals the prompt of an earlier
  candidate of the run, or whose image is pixel-identical to its parent's (the same digest of the
  bytes the image model returned: the simulator encodes equal pixels to equal bytes);
* best-so-far changes that move to an image already seen earlier in the run;
* selection noise: the judges' random error carried by the best-so-far. The simulator records, beside
  the truth, what a judge without random error would answer (`sim_expected`; for older logs it is the
  truth passed through the rating's saturation); the error is the judge total minus that.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from itertools import combinations
from typing import Any

JUDGE_KEY = re.compile(r"^i(\d+)/(c\d+)/judge_(alignment|aesthetic|checklist)$")
ALIGNMENT_TASKS = ("alignment", "checklist")


def truth_parts(events: Iterable[dict[str, Any]], candidates: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Candidate id -> its judges' recorded truths ("alignment", "aesthetic") and, when the simulator
    records them, what a judge without random error would answer ("alignment_expected", ...). A judge
    step names its image in `meta.sim_image` (newer simulators) or else its lane in its key; a re-judged
    image shares its truth with the candidate that made it."""
    by_image = {c["image"].rsplit("/", 1)[-1].split(".", 1)[0]: cid for cid, c in candidates.items() if c.get("image")}
    parts: dict[str, dict[str, float]] = {}
    for e in events:
        meta = e.get("meta") or {}
        if e.get("type") != "step" or "sim_truth" not in meta:
            continue
        task = e["key"].rsplit("/", 1)[-1].split(".", 1)[0].removeprefix("judge_")
        if task not in ("alignment", "aesthetic", "checklist"):
            continue
        stem = str(meta.get("sim_image", "")).split(".", 1)[0]
        if stem in by_image:  # the image's own name (a prepared vision copy keeps its stem)
            cid = by_image[stem]
        elif (match := JUDGE_KEY.match(e["key"])) is not None:
            cid = f"i{match.group(1)}{match.group(2)}"
        else:
            continue
        name = "aesthetic" if task == "aesthetic" else "alignment"
        entry = parts.setdefault(cid, {})
        entry.setdefault(name, float(meta["sim_truth"]))
        if "sim_expected" in meta:
            entry.setdefault(name + "_expected", float(meta["sim_expected"]))
    return {cid: p for cid, p in parts.items() if "alignment" in p and "aesthetic" in p}


def truths(events: Iterable[dict[str, Any]], candidates: dict[str, dict[str, Any]], alpha: float) -> dict[str, float]:
    """Candidate id -> true total = alpha * alignment + (1 - alpha) * 10 * aesthetic."""
    return {cid: alpha * p["alignment"] + (1 - alpha) * 10 * p["aesthetic"]
            for cid, p in truth_parts(events, candidates).items()}


def expected_totals(parts: dict[str, dict[str, float]], alpha: float, saturation: float) -> dict[str, float]:
    """Candidate id -> the total a judge without random error would give: the simulator's recorded
    expectation, or else the truth with the rating's saturation (the older simulators' judge: a rating
    closes `saturation` of the gap to 100, then adds zero-mean noise)."""
    out = {}
    for cid, p in parts.items():
        alignment = p.get("alignment_expected", p["alignment"] + saturation * (100 - p["alignment"]))
        out[cid] = alpha * alignment + (1 - alpha) * 10 * p.get("aesthetic_expected", p["aesthetic"])
    return out


def image_digests(events: Iterable[dict[str, Any]]) -> dict[str, str]:
    """Image path -> digest of the bytes the image model returned (the latest step for a path wins)."""
    digests = {}
    for e in events:
        result = e.get("result") if e.get("type") == "step" else None
        if isinstance(result, dict) and "path" in result and "sha256" in result:
            digests[result["path"]] = result["sha256"]
    return digests


def final_candidates(events: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The latest word on each scored candidate, as the summary reads it."""
    out: dict[str, dict[str, Any]] = {}
    for e in events:
        if e.get("type") == "candidate" and e.get("status") == "done":
            out[e["id"]] = e
        elif e.get("type") == "lane_failed":
            out.pop(e["id"], None)
    return out


def order(c: dict[str, Any]) -> tuple[int, int]:
    return (c["iteration"], c["index"])


def best_so_far(candidates: dict[str, dict[str, Any]], iterations: int, final_best: str | None) -> list[str]:
    """After each iteration, the best candidate by judge total (ties: the earlier one); the last one is the
    answer the run gave (`final_best`, which pairwise ranking may decide otherwise)."""
    picks = []
    for k in range(iterations):
        pool = [c for c in candidates.values() if c["iteration"] <= k]
        picks.append(min(pool, key=lambda c: (-c["total"], order(c)))["id"] if pool else None)
    if picks and final_best is not None:
        picks[-1] = final_best
    return picks


def repeats(candidates: dict[str, dict[str, Any]], digests: dict[str, str]) -> dict[str, int]:
    """Counts over children: same prompt as an earlier candidate, pixel-identical to the parent, either,
    and an image equal to any image rendered before it."""
    seen_prompts: set[str] = set()
    seen_images: set[str] = set()
    counts = {"children": 0, "prompt_repeats": 0, "same_as_parent": 0, "repeated": 0, "image_seen_before": 0}
    for c in sorted(candidates.values(), key=order):
        digest = digests.get(c.get("image") or "")
        if c["iteration"] >= 1:
            parent = candidates.get(c.get("parent") or "")
            same_prompt = c["prompt"] in seen_prompts
            same_parent = parent is not None and digest is not None and digests.get(parent.get("image") or "") == digest
            counts["children"] += 1
            counts["prompt_repeats"] += same_prompt
            counts["same_as_parent"] += same_parent
            counts["repeated"] += same_prompt or same_parent
            counts["image_seen_before"] += digest in seen_images
        seen_prompts.add(c["prompt"])
        if digest is not None:
            seen_images.add(digest)
    return counts


def best_changes(candidates: dict[str, dict[str, Any]], picks: list[str | None], digests: dict[str, str]) -> tuple[int, int]:
    """How often the best-so-far changed, and how often it changed to an image already rendered before."""
    changes = to_seen = 0
    for before, after in zip(picks, picks[1:], strict=False):
        if after is None or after == before:
            continue
        changes += 1
        chosen = candidates[after]
        digest = digests.get(chosen.get("image") or "")
        earlier = {digests.get(c.get("image") or "") for c in candidates.values() if order(c) < order(chosen)}
        to_seen += digest is not None and digest in earlier
    return changes, to_seen


def agreement(judged: dict[str, float], truth: dict[str, float]) -> tuple[float, int]:
    """Over every pair of candidates whose truths differ: in how many does the judges' total order them as
    the truth does (a judges' tie counts half), and how many pairs there were."""
    agree, pairs = 0.0, 0
    for a, b in combinations(sorted(set(judged) & set(truth)), 2):
        dt = truth[a] - truth[b]
        if abs(dt) < 1e-9:
            continue
        dj = judged[a] - judged[b]
        pairs += 1
        agree += 0.5 if dj == 0 else float((dj > 0) == (dt > 0))
    return agree, pairs


def measure_run(events: list[dict[str, Any]], summary: dict[str, Any], alpha: float,
                saturation: float = 0.0) -> dict[str, Any]:
    """The figures of one run (see the module docstring); `saturation` is the rating judge's, for a log
    whose simulator did not record its expected answers."""
    candidates = final_candidates(events)
    parts = truth_parts(events, candidates)
    truth = {cid: alpha * p["alignment"] + (1 - alpha) * 10 * p["aesthetic"] for cid, p in parts.items()}
    expected = expected_totals(parts, alpha, saturation)
    digests = image_digests(events)
    iterations = len(summary.get("iterations", []))
    final = (summary.get("best") or {}).get("id")
    picks = best_so_far(candidates, iterations, final)
    changes, to_seen = best_changes(candidates, picks, digests)
    agree, pairs = agreement({cid: c["total"] for cid, c in candidates.items()}, truth)
    images = sum(1 for e in events if e.get("type") == "step" and isinstance(e.get("result"), dict)
                 and "sha256" in e["result"])
    return {
        "true": truth.get(final, float("nan")) if final else float("nan"),
        "judge": candidates[final]["total"] if final in candidates else float("nan"),
        "judge_by_iteration": [candidates[p]["total"] if p else None for p in picks],
        "true_by_iteration": [truth.get(p) if p else None for p in picks],
        "expected_by_iteration": [expected.get(p) if p else None for p in picks],
        "images": images,
        "vision_calls": sum(1 for e in events if e.get("type") == "step" and e.get("service") == "vision"),
        "best_changes": changes, "best_changes_to_seen": to_seen,
        "agree": agree, "pairs": pairs,
        **repeats(candidates, digests),
    }
