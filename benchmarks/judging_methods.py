"""Which judging method picks the truly best candidate? An experiment in the simulator (issue 7).

For each idea and seed, one iteration of N lanes is run once per method with the same seed. Expansion,
prompts and images depend only on the seed and the step keys, so every method judges the *same pool
of pictures*; only the judging differs. Each method's pick is the best candidate of its ranking. The
simulator records the hidden truth of every picture (`sim_truth`: the pixels measured against the idea,
before judge noise), so each pick can be checked against the truly best candidate of the pool:
truth = alpha * alignment + (1 - alpha) * 10 * aesthetic, as the ranking itself weighs them.

Methods: rating (default: one 0-100 alignment rating), checklist (alignment from the yes/no checklist),
pairwise (rating scores, then the finalists compared in both orders), and rating with judge_samples 3
as a reference for what more judge calls alone buy. The judge noise is the simulator's default
(alignment rating: saturating high, as vision models' 0-100 ratings do, by closing 40% of the gap to 100,
then gaussian, sd 6 points; checklist: each answer wrong with probability 0.02, which
gives about the same root-mean-square alignment error; pairwise: sd 4.5 per image on the 0-100 total,
about what the two rating errors add up to, plus 3 points for the image shown first). The last rows
show how the checklist fares with fewer wrong answers.

    python -m benchmarks.judging_methods --seeds 30   # from the repository root
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

from beamsearch.app import start_run
from beamsearch.config import Settings
from beamsearch.precedence import resolve

IDEAS = (
    "a red lighthouse, a yellow sun, a white boat and a green tree by the sea at night",
    "a red lighthouse and a yellow sun by the sea at night",
    "a purple moon above an orange tent in the desert at dawn",
)
METHODS: dict[str, dict[str, Any]] = {
    "rating": {},
    "checklist": {"alignment": "checklist"},
    "pairwise": {"ranking": "pairwise"},
    "rating x3": {"judge_samples": 3},
    # sensitivity: a rating judge that does not saturate (the default closes 40% of the gap to 100)
    "rating unsat": {"sim.rating_saturation": 0.0},
    # sensitivity: the checklist judge with fewer errors per question than the default 2%
    "checklist 1%": {"alignment": "checklist", "sim.checklist_noise": 0.01},
    "checklist 0%": {"alignment": "checklist", "sim.checklist_noise": 0.0},
}


def settings_for(root: Path, idea: str, seed: int, n: int, m: int, flags: dict[str, Any]) -> Any:
    base = {"provider": "sim", "prompt": idea, "n": n, "m": m, "iterations": 1, "seed": seed,
            "runs_dir": str(root), "sim.latency.text.mean": 0, "sim.latency.image.mean": 0,
            "sim.latency.vision.mean": 0, "sim.image_size": 128}
    settings = resolve(None, {**base, **flags}, environ={})
    # every method must judge the same pool: no repeat check (whose decisions depend on which lane got
    # there first) and no second judging (a separate remedy, measured by benchmarks.quality)
    return Settings.model_validate({**settings.public_dict(), "variants": None, "rejudge": False})


def truths(events: list[dict[str, Any]], alpha: float) -> dict[str, float]:
    """Each candidate's true total from the judges' recorded `sim_truth` (lane -> candidate id)."""
    parts: dict[str, dict[str, float]] = {}
    for e in events:
        if e.get("type") != "step" or "sim_truth" not in (e.get("meta") or {}):
            continue
        iteration, lane, task = e["key"].split("/")
        if task in ("judge_alignment", "judge_checklist", "judge_aesthetic"):
            cid = f"{iteration}{lane}"
            parts.setdefault(cid, {})["aesthetic" if task == "judge_aesthetic" else "alignment"] = e["meta"]["sim_truth"]
    return {cid: alpha * p["alignment"] + (1 - alpha) * 10 * p["aesthetic"] for cid, p in parts.items()}


async def one(root: Path, idea: str, seed: int, n: int, m: int, flags: dict[str, Any]) -> dict[str, Any]:
    settings = settings_for(root, idea, seed, n, m, flags)
    result = await start_run(settings)
    events = [json.loads(line) for line in (result.store.path / "events.jsonl").read_text().splitlines() if line]
    truth = truths(events, settings.alpha)
    pick = result.summary["best"]["id"]
    best = max(truth.values())
    vision = sum(1 for e in events if e.get("type") == "step" and e["service"] == "vision")
    return {"hit": truth[pick] >= best - 1e-9, "regret": best - truth[pick], "pool": sorted(truth),
            "vision_calls": vision}


async def experiment(ideas: tuple[str, ...], seeds: range, n: int = 9, m: int = 3,
                     methods: dict[str, dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """Per method: how often it picked the truly best candidate, its mean regret, its vision calls."""
    methods = methods or METHODS
    table = {name: {"hits": 0, "trials": 0, "regret": [], "vision_calls": 0} for name in methods}
    with tempfile.TemporaryDirectory() as tmp:
        for idea in ideas:
            for seed in seeds:
                pools = set()
                for name, flags in methods.items():
                    outcome = await one(Path(tmp), idea, seed, n, m, flags)
                    pools.add(tuple(outcome["pool"]))
                    row = table[name]
                    row["hits"] += outcome["hit"]
                    row["trials"] += 1
                    row["regret"].append(outcome["regret"])
                    row["vision_calls"] += outcome["vision_calls"]
                assert len(pools) == 1, "every method must judge the same pool"
    for row in table.values():
        row["hit_rate"] = round(row["hits"] / row["trials"], 3)
        row["mean_regret"] = round(statistics.fmean(row.pop("regret")), 3)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("-n", type=int, default=9)
    parser.add_argument("-m", type=int, default=3)
    args = parser.parse_args()
    table = asyncio.run(experiment(IDEAS, range(args.seeds), args.n, args.m))
    print(f"{len(IDEAS)} ideas x {args.seeds} seeds, N={args.n}, M={args.m}, one pool per idea and seed")
    print(f"{'method':<12} {'picked truly best':>18} {'mean regret':>12} {'vision calls':>13}")
    for name, row in table.items():
        print(f"{name:<12} {row['hits']:>4}/{row['trials']:<4} ({row['hit_rate']:.0%}) {row['mean_regret']:>12.2f} "
              f"{row['vision_calls']:>13}")


if __name__ == "__main__":
    main()
