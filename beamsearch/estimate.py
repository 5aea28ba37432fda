"""Plan a run before paying for it: calls per service, a cost range and a time lower bound. Calls nothing.

`plan_calls` is the one place that knows how many model calls a search makes. Anything that changes the
search's shape (a new judging mode, more samples per judge) must add its calls here, and the test that
compares this plan with the steps a simulator run records keeps the two honest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from beamsearch.costs import billed_model, cost_of, load_prices, price_of
from beamsearch.latency import latencies
from beamsearch.limits import rate_window
from beamsearch.providers.base import Usage
from beamsearch.roles import ROLES
from beamsearch.schedule import EXPAND, dimension_of

# Which service answers each task (the last part of a step key, without the dimension suffix).
TASK_SERVICE = {
    "expand": "text",
    "critique": "text",
    "refine": "text",
    "combine": "text",
    "image": "image",
    "judge_alignment": "vision",
    "judge_aesthetic": "vision",
    "checklist": "text",
    "judge_checklist": "vision",
    "judge_pairwise": "vision",
}

# Token assumptions per call, (low, high): (input tokens, output tokens[, image input tokens]). The low end
# is a terse answer to a short template; the high end leaves room for long prompts and for the hidden
# reasoning tokens that reasoning models bill as output.
TEXT_TOKENS = {
    "expand": ((80, 10), (500, 600)),
    "combine": ((80, 10), (500, 500)),
    "critique": ((150, 20), (800, 800)),
    "refine": ((150, 5), (800, 600)),
    "checklist": ((300, 150), (900, 2000)),
}
VISION_TOKENS = ((100, 15, 85), (500, 500, 1600))
IMAGE_PROMPT_TOKENS = (10, 300)
# Image output tokens of a 1024x1024 picture by quality (OpenAI's gpt-image token table); other sizes
# scale with their area. The high end allows half as much again, for models that count differently.
IMAGE_OUTPUT_TOKENS = {"low": 272, "medium": 1056, "high": 4160}
IMAGE_HIGH_MARGIN = 1.5

@dataclass
class IterationPlan:
    """The calls of one iteration (task -> count) and its critical path: the services one lane waits on
    in sequence (calls made in parallel within a lane count once)."""

    iteration: int
    dimension: str
    calls: dict[str, int]
    chain: list[str]
    # tasks whose count depends on the answers (pairwise ranking): their fewest calls; `calls` holds the most
    fewest: dict[str, int] = field(default_factory=dict)

    def by_service(self, fewest: bool = False) -> dict[str, int]:
        counts = dict.fromkeys(ROLES, 0)
        for task, count in self.calls.items():
            counts[TASK_SERVICE[task]] += self.fewest.get(task, count) if fewest else count
        return counts


@dataclass
class CallPlan:
    iterations: list[IterationPlan]

    def by_service(self, fewest: bool = False) -> dict[str, int]:
        counts = dict.fromkeys(ROLES, 0)
        for plan in self.iterations:
            for service, count in plan.by_service(fewest).items():
                counts[service] += count
        return counts

    def by_task(self, fewest: bool = False) -> dict[str, int]:
        counts: dict[str, int] = {}
        for plan in self.iterations:
            for task, count in plan.calls.items():
                counts[task] = counts.get(task, 0) + (plan.fewest.get(task, count) if fewest else count)
        return counts

    @property
    def total(self) -> int:
        return sum(self.by_service().values())


def plan_calls(settings: Any) -> CallPlan:
    """Every call a run of `settings` makes when every lane succeeds first time, no refinement repeats a
    prompt, and it runs all its iterations (retries, re-asked variants, content-policy rephrases, skipped
    repeats and early stops are not counted).

    Iteration 0: per lane, expand WHAT and HOW (2 text), combine (1 text), one image, two judges (2 vision).
    Iteration k >= 1: one critique per parent (M parents, since M <= N and every lane is assumed to succeed),
    then N children, each refine (1 text; 2 with `refine: both`) + combine + image + two judges; with
    `rejudge` and elitism the M kept parents are judged again (2 vision each). After the last ranking,
    with `rejudge`, the survivors judged only once are judged again (the final check: at most M, plus
    the best so far without elitism; as few as none when every survivor was a kept parent).

    Judging modes (beamsearch/judging.py): `judge_samples: k` makes each judge answer k times;
    `alignment: checklist` replaces judge_alignment by judge_checklist and adds one checklist call (text) to
    the run; `ranking: pairwise` adds, per ranking, between 2(F-1) and 2*min(F(F-1)/2, max_pairs) vision
    calls, F = min(pool, finalists or max(4, 2M)), pool = N in iteration 0, N + M after it with elitism
    (and makes no final check: the comparisons decide the answer).
    """
    n, m = settings.n, settings.m
    samples = getattr(settings, "judge_samples", 1)
    alignment = "judge_checklist" if getattr(settings, "alignment", "rating") == "checklist" else "judge_alignment"
    judges = {alignment: samples, "judge_aesthetic": samples}
    per_candidate = {"combine": 1, "image": 1, **judges}
    judge_chain = ["image", "vision"]
    plans = [IterationPlan(0, EXPAND, {"expand": 2 * n, **{t: c * n for t, c in per_candidate.items()}},
                           ["text", "text", *judge_chain])]
    if alignment == "judge_checklist":
        plans[0].calls["checklist"] = 1  # once per run, while the first lanes expand
    refine = getattr(settings, "refine", "alternate")
    rejudge = getattr(settings, "rejudge", False)
    for k in range(1, settings.iterations):
        calls = {"critique": m, "refine": n * (2 if refine == "both" else 1), **{t: c * n for t, c in per_candidate.items()}}
        if rejudge and settings.elitism:
            for task, count in judges.items():
                calls[task] += count * m
        plans.append(IterationPlan(k, dimension_of(k, refine), calls, ["text", "text", "text", *judge_chain]))
    if getattr(settings, "ranking", "scores") == "pairwise":
        _add_pairwise(plans, settings)
    elif rejudge:
        most, fewest = (m, 0) if settings.elitism else (m + 1, m)
        plans.append(IterationPlan(settings.iterations, "final", {t: c * most for t, c in judges.items()},
                                   ["vision"] if fewest else [], fewest={t: c * fewest for t, c in judges.items()}))
    return CallPlan(plans)


def _add_pairwise(plans: list[IterationPlan], settings: Any) -> None:
    from beamsearch.judging import finalists_count, pairwise_pair_bounds

    n, m = settings.n, settings.m
    for plan in plans:
        pool = n + (m if plan.iteration > 0 and settings.elitism else 0)
        finalists = finalists_count(pool, m, settings.pairwise.finalists)
        low, high = pairwise_pair_bounds(finalists, settings.pairwise.max_pairs)
        plan.calls["judge_pairwise"], plan.fewest["judge_pairwise"] = 2 * high, 2 * low
        if low:
            plan.chain.append("vision")  # the first round of comparisons waits for the barrier


# --- cost -----------------------------------------------------------------------------------------


def _image_tokens(size: str, quality: str) -> tuple[float, float]:
    try:
        width, height = (int(part) for part in size.lower().split("x"))
    except ValueError:  # "auto" or an unusual spelling: assume a square 1024 picture
        width, height = 1024, 1024
    area = width * height / (1024 * 1024)
    quality = {"standard": "medium", "hd": "high"}.get(quality, quality)
    if quality in IMAGE_OUTPUT_TOKENS:
        low = high = IMAGE_OUTPUT_TOKENS[quality]
    else:  # "auto": the service picks
        low, high = min(IMAGE_OUTPUT_TOKENS.values()), max(IMAGE_OUTPUT_TOKENS.values())
    return low * area, high * area * IMAGE_HIGH_MARGIN


def _usage_range(task: str, model: str, settings: Any) -> tuple[Usage, Usage]:
    service = TASK_SERVICE[task]
    if service == "text":
        (li, lo), (hi, ho) = TEXT_TOKENS[task]
        return Usage(model, li, lo), Usage(model, hi, ho)
    if service == "vision":
        (li, lo, limg), (hi, ho, himg) = VISION_TOKENS
        return Usage(model, li, lo, image_input_tokens=limg), Usage(model, hi, ho, image_input_tokens=himg)
    low_out, high_out = _image_tokens(settings.image.size, settings.image.quality)
    return (Usage(model, IMAGE_PROMPT_TOKENS[0], image_output_tokens=round(low_out), images=1),
            Usage(model, IMAGE_PROMPT_TOKENS[1], image_output_tokens=round(high_out), images=1))


def cost_range(plan: CallPlan, settings: Any, prices: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Low and high dollars per service for the plan, and the models the price table does not know."""
    by_service = {s: [0.0, 0.0] for s in ROLES}
    fewest = plan.by_task(fewest=True)
    for task, count in plan.by_task().items():
        service = TASK_SERVICE[task]
        low, high = _usage_range(task, billed_model(settings, service), settings)
        by_service[service][0] += fewest[task] * cost_of(low, prices)
        by_service[service][1] += count * cost_of(high, prices)
    unpriced = sorted({billed_model(settings, s) for s in ROLES if not price_of(prices, billed_model(settings, s))})
    return {
        "low_usd": round(sum(v[0] for v in by_service.values()), 4),
        "high_usd": round(sum(v[1] for v in by_service.values()), 4),
        "by_service": {s: {"low_usd": round(v[0], 4), "high_usd": round(v[1], 4)} for s, v in by_service.items()},
        "unpriced_models": unpriced,
    }


# --- time -----------------------------------------------------------------------------------------


def _around(chain: list[str], service: str, latency: dict[str, float]) -> tuple[float, float]:
    """(head, tail): the calls every lane makes before its first call to `service`, and after its last."""
    positions = [i for i, s in enumerate(chain) if s == service]
    if not positions:
        return 0.0, 0.0
    return sum(latency[s] for s in chain[: positions[0]]), sum(latency[s] for s in chain[positions[-1] + 1:])


def _window(settings: Any, service: str) -> tuple[int, float] | None:
    """(starts allowed per window, window seconds) exactly as the limiter enforces a service's rpm."""
    rpm = getattr(settings.limits, service).rpm
    return rate_window(rpm, settings.limits.window_s) if rpm else None


def time_lower_bound(plan: CallPlan, settings: Any, latency: dict[str, float] | None = None) -> dict[str, Any]:
    """Seconds no scheduler can beat if every call takes its assumed latency.

    Iterations run one after another (the ranking barrier); each lasts at least the longest of: one
    lane's chain of calls; for each service, the calls before it in a lane, then ceil(calls / slots) of its
    calls back to back in one concurrency slot, then the calls after it; and under an rpm limit, the k-th
    start of a service comes at least floor(k / allowed) windows after its first. The limiter's window
    does not refill at an iteration's start, so the same rate argument over the whole run can bind harder
    than the sum of the iterations; the bound is the larger of the two. `latency` is the seconds per call
    of each service (default: from the settings alone, see `latency.latencies`).
    """
    latency = latency if latency is not None else latencies(settings, discover=False)[0]
    per_iteration = []
    for it in plan.iterations:
        bounds = {"chain": sum(latency[s] for s in it.chain)}
        for service, count in it.by_service(fewest=True).items():
            if not count:
                continue
            head, tail = _around(it.chain, service, latency)
            slots = getattr(settings.limits, service).concurrency
            bounds[f"{service} concurrency"] = head + math.ceil(count / slots) * latency[service] + tail
            if (window := _window(settings, service)) is not None:
                allowed, period = window
                bounds[f"{service} rate"] = head + (count - 1) // allowed * period + latency[service] + tail
        binding = max(bounds, key=lambda name: bounds[name])
        per_iteration.append({"iteration": it.iteration, "dimension": it.dimension, "seconds": round(bounds[binding], 3),
                              "bound_by": binding})
    total, bound_by = sum(i["seconds"] for i in per_iteration), "iterations"
    for service, count in plan.by_service(fewest=True).items():
        window = _window(settings, service)
        if window is None or not count or not plan.iterations:
            continue
        allowed, period = window
        head, _ = _around(plan.iterations[0].chain, service, latency)
        _, tail = _around(plan.iterations[-1].chain, service, latency)
        whole = head + (count - 1) // allowed * period + latency[service] + tail
        if whole > total:
            total, bound_by = whole, f"{service} rate over the whole run"
    return {"seconds": round(total, 3), "bound_by": bound_by, "per_iteration": per_iteration, "latency_assumed": latency}


def budget_notes(settings: Any, cost: dict[str, Any]) -> list[str]:
    """What the cost range means for the run's budget (set, default, or none)."""
    budget = settings.budget_usd()
    if budget is None:
        return []
    name = f"the default budget (${budget:.2f}; --max-cost sets another, --max-cost none lifts it)" \
        if settings.budget_is_default else f"max_cost_usd (${budget:.2f})"
    if cost["low_usd"] > budget:
        return [f"Even the low estimate passes {name}: the run will stop early, resumable."]
    if cost["high_usd"] > budget:
        return [f"The high estimate (${cost['high_usd']:.2f}) passes {name}: the run may stop before its last "
                "iteration, resumable."]
    return []


def range_line(settings: Any) -> str | None:
    """The line `run` prints before its first paid call: the estimate's range against the budget (None
    for a run that pays nothing)."""
    if not settings.paid_roles():
        return None
    cost = cost_range(plan_calls(settings), settings, load_prices(settings.prices))
    budget = settings.budget_usd()
    kept = "no budget" if budget is None else f"budget ${budget:.2f}" + (" (default)" if settings.budget_is_default else "")
    return f"Estimated cost ${cost['low_usd']:.2f} to ${cost['high_usd']:.2f} ({kept}); `beamsearch estimate` for details."


@dataclass
class Estimate:
    plan: CallPlan
    cost: dict[str, Any]
    time: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "calls": {"total": self.plan.total, "by_service": self.plan.by_service(), "by_task": self.plan.by_task(),
                      "per_iteration": [{"iteration": p.iteration, "dimension": p.dimension, "by_service": p.by_service(),
                                         "by_task": p.calls} for p in self.plan.iterations]},
            "cost": self.cost,
            "time": self.time,
            "notes": self.notes,
        }


def estimate(settings: Any, run_dir: Any = None) -> Estimate:
    """Everything `beamsearch estimate` prints. Reads the price table (refusing, as `run` does, a model it
    cannot price when a budget was set) and earlier runs' logs for latencies (`run_dir`, else matching
    runs in runs_dir); makes no call."""
    plan = plan_calls(settings)
    warned: list[str] = []
    prices = load_prices(settings.prices, check=settings, warnings=warned)
    cost = cost_range(plan, settings, prices)
    notes = ["Counts assume every call succeeds first time and every iteration runs; retries, content-policy "
             "rephrases and early stops change them.", *warned]
    if any(settings.role_provider(s) == "sim" for s in ROLES):
        notes.append("The simulator charges simulated prices; nothing is really paid.")
    if getattr(settings, "rejudge", False):
        notes.append("Kept parents are judged again at each ranking, and the final survivors once more "
                     "(rejudge), so a lucky first score does not win by staying: those judge calls are counted.")
    if getattr(settings, "variants", None) is not None:
        notes.append(f"A refinement that repeats a prompt already made is asked again (at most {settings.variants} "
                     "times) and its lane is skipped unrendered if it still repeats: more text calls, fewer images.")
    fewest = plan.by_task(fewest=True).get("judge_pairwise")
    if fewest is not None:
        notes.append(f"Pairwise ranking makes between {fewest} and {plan.by_task()['judge_pairwise']} judge_pairwise "
                     "calls: pairs implied by transitivity are skipped; the counts above are the most, the low cost "
                     "and the time bound use the fewest.")
    notes.extend(budget_notes(settings, cost))
    latency, source = latencies(settings, run_dir)
    time = {**time_lower_bound(plan, settings, latency), "latency_source": source}
    return Estimate(plan, cost, time, notes)
