"""Does the beam search earn its cost? Beam against best-of-N sampling and greedy, at an equal number of
images, by the simulator's hidden true quality (issue 12, DESIGN.md section 8).

    python -m benchmarks.quality                    # 30 seeds x 12 ideas, 2 worker processes
    python -m benchmarks.quality --quick            # 2 seeds x 3 ideas, small images: a smoke test
    python -m benchmarks.quality --seeds 40 --ideas 6 --json benchmarks/results/quality.json
    python -m benchmarks.quality --set refine=both  # any setting, for every search (e.g. a new engine's)
    python -m benchmarks.quality --arm "wide:n=12,m=4,iterations=3"   # one more beam-like search

For every idea and seed, each search ("arm") runs in-process through `beamsearch.app.start_run` with
the simulator at zero latency and the same seed, so iteration 0 of the beam draws the same nine lanes as
the first nine of best-of-36. The arms: best-of-36 random sampling (one iteration of N=36), the
default beam (N=9, M=3, 4 iterations), greedy (N=9, M=1, 4 iterations) and a blind-critic ablation (the
default beam whose critic is given no judge notes: no found/missing/weak lists, no notes). When the
settings have a `refine` schedule, one beam arm per schedule is added. The returned candidate of each
arm is scored by its hidden truth (see `quality_measure`); the differences are paired against
best-of-36 per idea and seed. The ideas appear nowhere in the tests or the other benchmarks; a third
use only words the simulator has no drawing for, a third mix both.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import multiprocessing
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from beamsearch.app import start_run  # noqa: E402
from beamsearch.config import Settings  # noqa: E402
from beamsearch.precedence import resolve  # noqa: E402
from beamsearch.providers.base import Providers, TextRequest, VisionRequest  # noqa: E402
from benchmarks import quality_stats  # noqa: E402
from benchmarks.bounds import read_events  # noqa: E402
from benchmarks.quality_measure import measure_run  # noqa: E402

GROUPS = {
    "known": ("a pink flower and a brown bench in a field at sunset",
              "an orange fox under a green tree in the snow",
              "a black train on a gray bridge over a lake at dawn",
              "a red car and a yellow tent in the desert at night"),
    "mixed": ("a lighthouse keeper reading a book by a candle at night",
              "a golden kite above a teal whale in the ocean",
              "a violin and a red apple on a wooden table",
              "a sleepy owl perched in a tree under the moon"),
    "unknown": ("a samurai meditating beside a waterfall",
                "a hedgehog sleeping under autumn leaves",
                "an astronaut playing chess with a penguin",
                "a violinist performing in a gothic cathedral"),
}
# one idea of each group in turn, so that any `--ideas K` keeps the groups balanced
IDEAS: tuple[tuple[str, str], ...] = tuple((group, GROUPS[group][i]) for i in range(4) for group in GROUPS)
BEAM = {"n": 9, "m": 3, "iterations": 4}
BASELINE = "best-of-36"
PAIRS_PER_POOL = 12  # pairwise-judge calibration: pairs of the best-of pool compared in both orders


@dataclasses.dataclass(frozen=True)
class Arm:
    """One search to run for every idea and seed: settings over the common ones, and whether its critic
    is blind (given no judge notes)."""

    flags: dict[str, Any]
    blind: bool = False


def default_arms(extra: dict[str, dict[str, Any]] | None = None) -> dict[str, Arm]:
    images = BEAM["n"] * BEAM["iterations"]
    arms = {
        f"best-of-{images}": Arm({"n": images, "m": 1, "iterations": 1}),
        "beam": Arm(dict(BEAM)),
        "greedy": Arm({**BEAM, "m": 1}),
        "blind critic": Arm(dict(BEAM), blind=True),
    }
    refine = Settings.model_fields.get("refine")
    if refine is not None:  # the refinement schedule of issue 12, once the engine has it
        for value in getattr(refine.annotation, "__args__", ()):
            if value != refine.default:
                arms[f"beam refine={value}"] = Arm({**BEAM, "refine": value})
    for name, flags in (extra or {}).items():
        arms[name] = Arm({**BEAM, **flags})
    return arms


class BlindCritic:
    """The simulator, except that its critic sees no judge notes: the prompts, the idea and the scores
    only. Measures how much of the search's gain comes through the judges' notes."""

    def __init__(self, simulator: Any) -> None:
        self.sim = simulator

    async def complete(self, request: TextRequest) -> Any:
        if request.task == "critique":
            blind = {**request.variables, "missing": [], "weak": [], "found": [],
                     "alignment_notes": "none", "aesthetic_notes": "none"}
            request = dataclasses.replace(request, variables=blind, user="")
        return await self.sim.complete(request)

    async def generate(self, request: Any) -> Any:
        return await self.sim.generate(request)

    async def judge(self, request: Any) -> Any:
        return await self.sim.judge(request)


def settings_for(root: Path, idea: str, seed: int, flags: dict[str, Any], common: dict[str, Any]) -> Settings:
    base = {"provider": "sim", "prompt": idea, "seed": seed, "runs_dir": str(root),
            "sim.latency.text.mean": 0, "sim.latency.image.mean": 0, "sim.latency.vision.mean": 0}
    settings = resolve(None, {**base, **common, **flags}, environ={})
    # resolve skips None values (options not given); a top-level setting asked to be null is set here
    unset = {name: None for name, value in {**common, **flags}.items() if value is None and "." not in name}
    return Settings.model_validate({**settings.public_dict(), **unset}) if unset else settings



async def pairwise_calibration(settings: Settings, run_dir: Path, events: list[dict[str, Any]]) -> dict[str, float]:
    """Compare pairs of the pool's images with the simulator's pairwise judge in both orders: how often a
    verdict agrees with the truth, and how often the two orders disagree (the verdict flips)."""
    from beamsearch.providers.sim import Simulator
    from benchmarks.quality_measure import final_candidates, truths

    candidates = final_candidates(events)
    truth = truths(events, candidates, settings.alpha)
    ids = sorted(cid for cid in truth if candidates[cid].get("image"))
    pairs = [p for p in random.Random(settings.seed).sample([(a, b) for i, a in enumerate(ids) for b in ids[i + 1:]],
                                                           min(PAIRS_PER_POOL, len(ids) * (len(ids) - 1) // 2))
             if abs(truth[p[0]] - truth[p[1]]) > 1e-9]
    sim = Simulator(settings.seed, settings.sim)
    agree = flips = 0
    for a, b in pairs:
        winners = []
        for first, second in ((a, b), (b, a)):
            request = VisionRequest(key=f"calibration/{first}-{second}/judge_pairwise", task="judge_pairwise",
                                    system="", user="", variables={"idea": settings.prompt, "alpha": settings.alpha},
                                    images=(run_dir / candidates[first]["image"], run_dir / candidates[second]["image"]))
            verdict = json.loads((await sim.judge(request)).text)["winner"]
            winners.append(first if verdict == "first" else second)
        better = a if truth[a] > truth[b] else b
        agree += sum(w == better for w in winners)
        flips += winners[0] != winners[1]
    return {"pairwise_verdicts": 2 * len(pairs), "pairwise_agree": agree, "pairwise_pairs": len(pairs),
            "pairwise_flips": flips}


def run_arm(root: Path, idea: str, seed: int, arm: Arm, common: dict[str, Any], calibrate: bool) -> dict[str, Any]:
    settings = settings_for(root, idea, seed, arm.flags, common)
    providers = None
    if arm.blind:
        from beamsearch.providers.sim import Simulator

        sim = Simulator(settings.seed, settings.sim)
        providers = Providers(text=BlindCritic(sim), image=sim, vision=sim,
                              labels=dict.fromkeys(("text", "image", "vision"), sim.label))
    result = asyncio.run(start_run(settings, providers=providers))
    events = read_events(result.store.path)
    saturation = settings.sim.rating_saturation if settings.alignment == "rating" else 0.0
    metrics = measure_run(events, result.summary, settings.alpha, saturation)
    metrics["status"] = result.status
    if calibrate:
        metrics.update(asyncio.run(pairwise_calibration(settings, result.store.path, events)))
    shutil.rmtree(result.store.path, ignore_errors=True)
    return metrics


def run_job(job: tuple[int, int, dict[str, Arm], dict[str, Any]]) -> dict[str, Any]:
    """Every arm for one idea and seed (one worker process's unit of work)."""
    index, seed, arms, common = job
    group, idea = IDEAS[index]
    begin = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="beamsearch-quality-") as tmp:
        results = {name: run_arm(Path(tmp), idea, seed, arm, common, calibrate=name == BASELINE)
                   for name, arm in arms.items()}
    return {"idea": idea, "group": group, "seed": seed, "arms": results, "seconds": time.perf_counter() - begin}


def experiment(seeds: int, ideas: int, *, workers: int = 2, common: dict[str, Any] | None = None,
               arms: dict[str, Arm] | None = None) -> dict[str, Any]:
    """Run every arm for the first `ideas` ideas x `seeds` seeds; the raw jobs and the aggregate tables."""
    arms = arms or default_arms()
    common = common or {}
    jobs = [(i, s, arms, common) for i in range(min(ideas, len(IDEAS))) for s in range(seeds)]
    begin = time.perf_counter()
    if workers > 1 and len(jobs) > 1:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            done = list(pool.imap_unordered(run_job, jobs))
    else:
        done = [run_job(job) for job in jobs]
    done.sort(key=lambda j: (IDEAS.index((j["group"], j["idea"])), j["seed"]))
    return {"seeds": seeds, "ideas": [j for j in dict.fromkeys(j["idea"] for j in done)], "arms": list(arms),
            "common": common, "seconds": round(time.perf_counter() - begin, 1), "workers": workers,
            "jobs": done, "tables": quality_stats.aggregate(done, list(arms), BASELINE)}


def parse_flags(pairs: list[str]) -> dict[str, Any]:
    """`key=value` pairs (dotted keys; values read as YAML scalars) into settings flags."""
    flags = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"'{pair}' is not key=value")
        flags[key.strip()] = yaml.safe_load(value)
    return flags


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--ideas", type=int, default=len(IDEAS), help=f"how many of the {len(IDEAS)} ideas "
                        "(taken one per group in turn)")
    parser.add_argument("--quick", action="store_true", help="2 seeds x 3 ideas, 64 px images")
    parser.add_argument("--json", type=Path, help="write the raw figures and the tables here")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a setting for every arm")
    parser.add_argument("--arm", action="append", default=[], metavar="NAME:KEY=VALUE,...",
                        help="one more beam-like arm: the default beam's settings with these changed")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.ideas, args.image_size = 2, 3, 64
    extra = {}
    for spec in args.arm:
        name, _, body = spec.partition(":")
        extra[name] = parse_flags([p for p in body.split(",") if p])
    common = {"sim.image_size": args.image_size, **parse_flags(args.set)}
    result = experiment(args.seeds, args.ideas, workers=args.workers, common=common, arms=default_arms(extra))
    print(quality_stats.render(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, default=str, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
