"""The quality benchmark's arithmetic and tables: paired differences with 95% intervals, per-iteration
means, shares of repeated renders, selection noise and judge calibration (see `benchmarks.quality`)."""

from __future__ import annotations

import math
import statistics
from statistics import NormalDist
from typing import Any

GROUP_ORDER = ("known", "mixed", "unknown", "all")


# Student's t 97.5% quantiles for 1..30 degrees of freedom (standard tables)
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t_quantile(df: int) -> float:
    """Student's t 97.5% quantile: from the table up to 30 degrees of freedom, beyond by the Cornish-Fisher
    expansion (within 0.001 of the exact value there)."""
    if df <= 0:
        return float("nan")
    if df <= len(T975):
        return T975[df - 1]
    z = NormalDist().inv_cdf(0.975)
    return z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)


def mean_ci(values: list[float]) -> dict[str, float]:
    """Mean and the half-width of its 95% interval (t distribution; nan for fewer than two values)."""
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return {"mean": float("nan"), "ci": float("nan"), "n": 0}
    if len(values) < 2:
        return {"mean": values[0], "ci": float("nan"), "n": 1}
    half = t_quantile(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return {"mean": statistics.fmean(values), "ci": half, "n": len(values)}


def by_group(jobs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {g: [] for g in GROUP_ORDER}
    for job in jobs:
        groups[job["group"]].append(job)
        groups["all"].append(job)
    return {g: js for g, js in groups.items() if js}


def _ratio(top: float, bottom: float) -> float:
    return top / bottom if bottom else float("nan")


def per_iteration(runs: list[dict[str, Any]]) -> list[dict[str, float]]:
    """Mean judge total and mean true total of the best-so-far after each iteration."""
    length = max((len(r["judge_by_iteration"]) for r in runs), default=0)
    rows = []
    for k in range(length):
        judged = [r["judge_by_iteration"][k] for r in runs if len(r["judge_by_iteration"]) > k
                  and r["judge_by_iteration"][k] is not None]
        true = [r["true_by_iteration"][k] for r in runs if len(r["true_by_iteration"]) > k
                and r["true_by_iteration"][k] is not None]
        rows.append({"iteration": k, "judge": statistics.fmean(judged) if judged else float("nan"),
                     "true": statistics.fmean(true) if true else float("nan")})
    return rows


def selection_noise(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Of the rise of the best-so-far's judge total from iteration 0 to the end, the share that is a rise of
    the judges' random error rather than of the picture: (sum of error rises) / (sum of judge rises), the
    error being the judge total minus what a judge without random error would give the same image (which
    keeps the judge's own scale, e.g. its saturation, out of the noise)."""
    judge_rise = true_rise = error_rise = 0.0
    for r in runs:
        j, t, e = r["judge_by_iteration"], r["true_by_iteration"], r["expected_by_iteration"]
        if len(j) < 2 or None in (j[0], j[-1], t[0], t[-1], e[0], e[-1]):
            continue
        judge_rise += j[-1] - j[0]
        true_rise += t[-1] - t[0]
        error_rise += (j[-1] - e[-1]) - (j[0] - e[0])
    count = max(1, len(runs))
    return {"judge_rise": judge_rise / count, "true_rise": true_rise / count, "error_rise": error_rise / count,
            "noise_share": _ratio(error_rise, judge_rise)}


def arm_figures(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Everything about one arm that is not a comparison with the baseline."""
    total = {k: sum(r[k] for r in runs) for k in ("children", "prompt_repeats", "same_as_parent", "repeated",
                                                   "image_seen_before", "best_changes", "best_changes_to_seen",
                                                   "agree", "pairs")}
    figures = {
        "true": mean_ci([r["true"] for r in runs]),
        "judge": statistics.fmean(r["judge"] for r in runs),
        "images": statistics.fmean(r["images"] for r in runs),
        "vision_calls": statistics.fmean(r["vision_calls"] for r in runs),
        "per_iteration": per_iteration(runs),
        "repeat_share": _ratio(total["repeated"], total["children"]),
        "prompt_repeat_share": _ratio(total["prompt_repeats"], total["children"]),
        "same_as_parent_share": _ratio(total["same_as_parent"], total["children"]),
        "image_seen_before_share": _ratio(total["image_seen_before"], total["children"]),
        "best_changes": total["best_changes"],
        "best_changes_to_seen_share": _ratio(total["best_changes_to_seen"], total["best_changes"]),
        "judge_truth_agreement": _ratio(total["agree"], total["pairs"]),
        "not_done": sum(1 for r in runs if r.get("status") != "done"),
        **selection_noise(runs),
    }
    if any("pairwise_verdicts" in r for r in runs):
        verdicts = sum(r.get("pairwise_verdicts", 0) for r in runs)
        pairs = sum(r.get("pairwise_pairs", 0) for r in runs)
        figures["pairwise_agreement"] = _ratio(sum(r.get("pairwise_agree", 0) for r in runs), verdicts)
        figures["pairwise_flip_share"] = _ratio(sum(r.get("pairwise_flips", 0) for r in runs), pairs)
    return figures


def aggregate(jobs: list[dict[str, Any]], arms: list[str], baseline: str) -> dict[str, Any]:
    """Per group (known / mixed / unknown / all): the baseline's mean true total, every other arm's mean
    paired difference against it with a 95% interval, and each arm's own figures."""
    tables: dict[str, Any] = {"groups": {}, "arms": {}}
    for group, members in by_group(jobs).items():
        row: dict[str, Any] = {"jobs": len(members), baseline: mean_ci([j["arms"][baseline]["true"] for j in members])}
        for arm in arms:
            if arm != baseline:
                row[arm] = mean_ci([j["arms"][arm]["true"] - j["arms"][baseline]["true"] for j in members])
        tables["groups"][group] = row
    for arm in arms:
        tables["arms"][arm] = arm_figures([j["arms"][arm] for j in jobs])
    return tables


def _signed(stat: dict[str, float]) -> str:
    if math.isnan(stat["mean"]):
        return "n/a"
    text = f"{stat['mean']:+.2f}".replace("-", "−")
    return text if math.isnan(stat["ci"]) else f"{text} ± {stat['ci']:.2f}"


def _plain(stat: dict[str, float]) -> str:
    return "n/a" if math.isnan(stat["mean"]) else (f"{stat['mean']:.1f}" + ("" if math.isnan(stat["ci"])
                                                                          else f" ± {stat['ci']:.1f}"))


def _pct(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.0f}%"


def render(result: dict[str, Any]) -> str:
    """The tables as Markdown, as BENCHMARKS.md shows them."""
    tables, arms = result["tables"], result["arms"]
    baseline, others = arms[0], arms[1:]
    groups = [g for g in GROUP_ORDER if g in tables["groups"]]
    lines = [f"{len(result['ideas'])} ideas x {result['seeds']} seeds, {result['seconds']:.0f} s on "
             f"{result['workers']} workers; true quality of the returned image (0-100); rows after the first: "
             f"mean paired difference against {baseline}, 95% interval", "",
             "| search | " + " | ".join(f"{g} ({tables['groups'][g]['jobs']})" for g in groups) + " |",
             "|---|" + "---|" * len(groups),
             f"| {baseline} | " + " | ".join(_plain(tables["groups"][g][baseline]) for g in groups) + " |"]
    for arm in others:
        lines.append(f"| {arm} | " + " | ".join(_signed(tables["groups"][g][arm]) for g in groups) + " |")
    lines += ["", "| search | images | vision calls | judge total | true total | repeated renders "
              "(same prompt / same as parent) | selection noise | best changes to a seen image | "
              "judge-truth pair agreement |", "|---|---|---|---|---|---|---|---|---|"]
    for arm in arms:
        f = tables["arms"][arm]
        lines.append(f"| {arm} | {f['images']:.1f} | {f['vision_calls']:.1f} | {f['judge']:.1f} | "
                     f"{_plain(f['true'])} | {_pct(f['repeat_share'])} ({_pct(f['prompt_repeat_share'])} / "
                     f"{_pct(f['same_as_parent_share'])}) | {_pct(f['noise_share'])} | "
                     f"{_pct(f['best_changes_to_seen_share'])} of {f['best_changes']} | "
                     f"{_pct(f['judge_truth_agreement'])} |")
    lines += ["", "Best-so-far after each iteration, judge total / true total:", "",
              "| search | " + " | ".join(f"iteration {k}" for k in range(max(len(tables['arms'][a]['per_iteration'])
                                                                               for a in arms))) + " |"]
    lines.append("|---|" + "---|" * max(len(tables["arms"][a]["per_iteration"]) for a in arms))
    for arm in arms:
        cells = [f"{r['judge']:.1f} / {r['true']:.1f}" for r in tables["arms"][arm]["per_iteration"]]
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    lines += ["", "Rise of the best-so-far from iteration 0 to the end (means per run, points):", "",
              "| search | judge total | true total | judges' error carried (selection noise) | noise share |",
              "|---|---|---|---|---|"]
    for arm in others:
        f = tables["arms"][arm]
        lines.append(f"| {arm} | {f['judge_rise']:+.2f} | {f['true_rise']:+.2f} | {f['error_rise']:+.2f} | "
                     f"{_pct(f['noise_share'])} |")
    base = tables["arms"][baseline]
    if "pairwise_agreement" in base:
        lines += ["", f"Judge calibration on the {baseline} pools: rating judges' totals order a pair as the truth "
                  f"does {_pct(base['judge_truth_agreement'])} of the time; a pairwise verdict agrees with the truth "
                  f"{_pct(base['pairwise_agreement'])} of the time, and {_pct(base['pairwise_flip_share'])} of "
                  "pairs get different verdicts in the two orders."]
    stopped = {a: tables["arms"][a]["not_done"] for a in arms if tables["arms"][a]["not_done"]}
    if stopped:
        lines += ["", f"Runs that did not finish: {stopped}"]
    return "\n".join(lines)
