"""Planning a batch before paying for it, and how many of its ideas run at once.

Both reuse the plan of one run (`estimate.plan_calls`, `cost_range`, `time_lower_bound`) per idea. What a
batch adds is the sharing: one set of limiters serves every idea, so the batch can be no faster than the
busiest service allows over all of them together, nor than its slowest idea alone, nor than the ideas'
own times spread over the slots that run them.
"""

from __future__ import annotations

import json
import math
from typing import Any

from beamsearch.costs import load_prices
from beamsearch.estimate import CallPlan, _around, cost_range, latencies, plan_calls, time_lower_bound
from beamsearch.limits import rate_window
from beamsearch.roles import ROLES

MAX_IDEAS_AT_ONCE = 64  # the default's ceiling, when no limit binds (the simulator at zero latency)
SPARE_IDEAS = 1  # beyond what keeps the busiest service full: an idea at its ranking barrier asks nothing


def capacity(settings: Any, service: str, latency: float) -> float:
    """Calls of `service` that can be in flight at once, on average: its concurrency cap, or what its rate
    admits during one call's latency (Little's law), whichever is smaller."""
    limits = getattr(settings.limits, service)
    if limits.rpm is None:
        return float(limits.concurrency)
    return min(float(limits.concurrency), limits.rpm / 60.0 * latency)


def _chain_seconds(plan: CallPlan, latency: dict[str, float]) -> float:
    """One idea's own duration with nothing in its way: its iterations' critical chains, one after another."""
    return sum(sum(latency[s] for s in it.chain) for it in plan.iterations)


def ideas_at_once(shared: Any, ideas: list[Any]) -> int:
    """The default number of ideas run side by side: enough to keep the busiest service full.

    The busiest service is the one with the most work per unit of capacity over the whole batch. One idea
    keeps on average `calls x latency / its own duration` of that service's calls in flight (fewer while it
    waits at a ranking barrier), so ceil(capacity / that) ideas fill it, and `SPARE_IDEAS` more cover the
    ideas that sit at a barrier; never more ideas than there are, nor more than MAX_IDEAS_AT_ONCE.
    """
    if not ideas:
        return 1
    latency = latencies(shared, discover=False)[0]  # the settings alone: the same on every resume
    made: dict[int, CallPlan] = {}  # ideas of equal own settings share one settings object: plan it once
    plans = [made.get(id(s)) or made.setdefault(id(s), plan_calls(s)) for s in ideas]
    counts = [plan.by_service(fewest=True) for plan in plans]
    work = {s: sum(c[s] for c in counts) * latency[s] / max(capacity(shared, s, latency[s]), 1e-9) for s in ROLES}
    busiest = max(work, key=lambda s: work[s])
    demand = sum(c[busiest] * latency[busiest] / max(_chain_seconds(p, latency), 1e-9)
                 for c, p in zip(counts, plans, strict=True)) / len(plans)
    if demand <= 0:
        return min(len(ideas), MAX_IDEAS_AT_ONCE)
    wanted = math.ceil(capacity(shared, busiest, latency[busiest]) / demand - 1e-9) + SPARE_IDEAS
    return max(1, min(len(ideas), MAX_IDEAS_AT_ONCE, wanted))


def _shared_bounds(shared: Any, plans: list[CallPlan], latency: dict[str, float]) -> dict[str, float]:
    """Per service, over every idea together: its rate (the k-th start comes floor(k / allowed) windows
    after the first) and its concurrency (ceil(calls / slots) calls back to back), each with the shortest
    lead-in before an idea's first call of it and the shortest tail after its last."""
    bounds: dict[str, float] = {}
    for service in ROLES:
        count = sum(plan.by_service(fewest=True)[service] for plan in plans)
        if not count:
            continue
        head = min(_around(p.iterations[0].chain, service, latency)[0] for p in plans)
        tail = min(_around(p.iterations[-1].chain, service, latency)[1] for p in plans)
        slots = getattr(shared.limits, service).concurrency
        bounds[f"{service} concurrency over the batch"] = head + math.ceil(count / slots) * latency[service] + tail
        rpm = getattr(shared.limits, service).rpm
        if rpm:
            allowed, period = rate_window(rpm, shared.limits.window_s)
            bounds[f"{service} rate over the batch"] = head + (count - 1) // allowed * period + latency[service] + tail
    return bounds


def estimate_batch(shared: Any, ideas: list[Any], concurrency: int) -> dict[str, Any]:
    """Calls, a cost range and a time lower bound for the whole batch. Calls nothing."""
    prices = load_prices(shared.prices)
    latency = latencies(shared)[0]
    cache: dict[str, tuple[CallPlan, dict[str, Any], float]] = {}
    keys: dict[int, str] = {}  # ideas of equal own settings often share one settings object
    plans, seconds = [], []
    calls = dict.fromkeys(ROLES, 0)
    cost = {"low_usd": 0.0, "high_usd": 0.0}
    unpriced: set[str] = set()
    for settings in ideas:  # ideas with the same settings (most of them) share one plan
        key = keys.get(id(settings)) or keys.setdefault(id(settings), json.dumps(
            settings.model_dump(mode="json", exclude={"prompt", "runs_dir"}), sort_keys=True))
        if key not in cache:
            plan = plan_calls(settings)
            cache[key] = (plan, cost_range(plan, settings, prices), time_lower_bound(plan, settings)["seconds"])
        plan, money, alone = cache[key]
        plans.append(plan)
        seconds.append(alone)
        for service, count in plan.by_service().items():
            calls[service] += count
        cost["low_usd"] += money["low_usd"]
        cost["high_usd"] += money["high_usd"]
        unpriced.update(money["unpriced_models"])
    bounds = {"slowest idea alone": max(seconds), f"ideas {concurrency} at a time": sum(seconds) / concurrency,
              **_shared_bounds(shared, plans, latency)}
    binding = max(bounds, key=lambda name: bounds[name])
    notes = ["Counts assume every call succeeds first time and every iteration runs; retries, content-policy "
             "rephrases and early stops change them.",
             "One set of limits serves the whole batch: the time bound is the largest of the bounds listed."]
    budget = shared.budget_usd()  # None when lifted (`none`) or simulated; the default budget when unset and paid
    if budget is not None and cost["low_usd"] > budget:
        name = "the default budget" if shared.budget_is_default else "max_cost_usd"
        notes.append(f"Even the low estimate passes {name} (${budget:.2f}), which caps the whole "
                     "batch: it will stop early, resumable.")
    if any(shared.role_provider(s) == "sim" for s in ROLES):
        notes.append("The simulator charges simulated prices; nothing is really paid.")
    return {
        "ideas": len(ideas), "concurrency_ideas": concurrency,
        "calls": {"total": sum(calls.values()), "by_service": calls},
        "cost": {"low_usd": round(cost["low_usd"], 4), "high_usd": round(cost["high_usd"], 4),
                 "unpriced_models": sorted(unpriced)},
        "time": {"seconds": round(bounds[binding], 3), "bound_by": binding,
                 "bounds": {k: round(v, 3) for k, v in bounds.items()}, "latency_assumed": latency},
        "notes": notes,
    }
