"""Issue 14, findings 3 and 4: every paid answer is counted, usable or not; the budget's reserve learns
from what calls cost; a budget stop never pays for a picture it cannot judge; and there is one spend
figure everywhere (the sum of the log's costs)."""

from __future__ import annotations

import json

import pytest
from costhelp import Paying, Watched
from simhelp import read_events, sim_settings

from beamsearch.app import resume_run, start_run
from beamsearch.compose import Pieces
from beamsearch.costs import Budget, load_prices, typical_cost
from beamsearch.providers.sim import Simulator

FAST = {"retries.backoff_initial": 0.0, "retries.backoff_max": 0.0}


def logged_spend(events: list[dict]) -> float:
    return sum(e.get("cost", 0.0) for e in events if e["type"] in ("step", "attempt_failed"))


async def test_unusable_paid_answers_are_counted_held_by_the_budget_and_known_on_resume(tmp_path) -> None:
    """60% of pictures arrive cut short: each was paid for, so the run's spend is what was paid."""
    settings = sim_settings(tmp_path, n=4, m=2, iterations=3, max_cost_usd=0.30, **FAST)
    paying = Paying(Simulator(settings.seed, settings.sim), spoil_rate=0.6)
    result = await start_run(settings, providers=paying.providers())
    assert paying.spoiled >= 4
    events = read_events(result.store.path)
    failed = [e for e in events if e["type"] == "attempt_failed"]
    assert len(failed) == paying.spoiled and all(e["cost"] > 0 and e["usage"]["images"] == 1 for e in failed)
    assert result.summary["cost_usd"] == pytest.approx(paying.paid, abs=1e-6)
    assert result.summary["cost_usd"] == pytest.approx(logged_spend(events), abs=1e-6)
    assert result.summary["usage"]["image"]["images"] == sum(1 for _, key, _ in paying.ends if "/image" in key)
    assert result.status == "stopped" and result.exit_code == 3
    assert paying.paid <= 0.30 + 2 * typical_cost("image", "sim-image", load_prices())  # in flight at the stop

    before = result.summary["cost_usd"]
    again = Paying(Simulator(settings.seed, settings.sim))
    resumed = await resume_run(result.store.path, flags={"max_cost_usd": 0.35}, providers=again.providers(),
                               environ={})
    started = [e for e in read_events(result.store.path) if e["type"] == "run_started"][-1]
    assert started["spent_usd"] == pytest.approx(before, abs=1e-6)  # resume knows what the failures cost
    assert resumed.summary["cost_usd"] == pytest.approx(before + again.paid, abs=1e-6)


def test_the_reserve_learns_from_what_calls_cost() -> None:
    budget = Budget(1.0)
    assert budget.reserve_for("image", "m", 0.04) == 0.04
    budget.observe("image", "m", 0.40)
    budget.observe("image", "m", 0.10)
    assert budget.reserve_for("image", "m", 0.04) == 0.40
    assert budget.reserve_for("image", "other", 0.04) == 0.04 and budget.reserve_for("vision", "m", 0.001) == 0.001


@pytest.mark.parametrize("cap", [0.30, 1.00])
@pytest.mark.parametrize("factor", [1, 3, 10])
async def test_budget_sweep_stops_within_what_was_in_flight_and_reports_the_logged_figure(tmp_path, factor, cap) -> None:
    """Calls cost 1x, 3x and 10x the typical estimate. Once spending passes the cap nothing new starts
    except the judges of pictures already paid or in flight; every paid picture is judged; and the stop
    message, the summary, run_finished and the logged costs give one figure, which is what was paid.
    One picture at a time (image concurrency 1), so lanes wait for the limiter holding stale reserves."""
    settings = sim_settings(tmp_path, n=6, m=2, iterations=3, max_cost_usd=cap, **FAST,
                            **{"limits.image.concurrency": 1})
    paying = Paying(Simulator(settings.seed, settings.sim), factor=factor)
    budget = Watched(cap)
    result = await start_run(settings, pieces=Pieces(providers=paying.providers(), budget=budget))
    assert result.status in ("stopped", "done"), result.summary.get("reason")
    events = read_events(result.store.path)
    steps = {e["key"]: e for e in events if e["type"] == "step"}
    if result.status == "done":  # the whole search fitted (1x under $1.00)
        assert factor == 1 and result.summary["cost_usd"] <= cap
        return

    # one figure, and it is what was paid
    spend = result.summary["cost_usd"]
    finished = [e for e in events if e["type"] == "run_finished"][-1]
    assert spend == pytest.approx(paying.paid, abs=1e-6) == pytest.approx(logged_spend(events), abs=1e-6)
    assert finished["cost_usd"] == spend
    assert f"(spent ${spend:.4f})" in result.error.message and finished["reason"] == result.error.message

    # after the budget was reached, nothing new started but the judges of pictures started before it
    if budget.reached is None:  # the reserves were right: the cap was never passed at all
        assert spend <= cap
        reached = float("inf")
    else:
        reached = budget.reached
    late = [key for at, key in paying.starts if at > reached]
    pictures_before = {key.rsplit("/", 1)[0] for at, key in paying.starts if at <= reached and key.endswith("/image")}
    assert all("/judge_" in key and key.rsplit("/", 1)[0] in pictures_before for key in late), late
    # so the cap is passed by at most the calls in flight when it was reached (started, not yet settled)
    # and the judges pledged to pictures already paid or in flight
    cost_of_key = {key: cost for _, key, cost in paying.ends}
    started_before = sum(cost_of_key[key] for at, key in paying.starts if at <= reached)
    in_flight = started_before - budget.spent_before - budget.crossing
    late_cost = sum(cost_of_key[key] for key in late)
    assert spend - cap <= budget.crossing + in_flight + late_cost + 1e-9
    assert late_cost <= 2 * len(pictures_before) * factor * typical_cost("vision", "sim-vision", load_prices()) + 1e-9

    # no paid picture is left unjudged
    for key in (k for k in steps if k.endswith("/image")):
        lane = key.rsplit("/", 1)[0]
        assert f"{lane}/judge_alignment" in steps and f"{lane}/judge_aesthetic" in steps, lane
    assert json.loads((result.store.path / "summary.json").read_text())["cost_usd"] == spend
