"""`estimate` counts the calls a run makes, prices them as a range and bounds the time, calling nothing."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import pytest
from simhelp import SEED, read_events, sim_settings, step_tasks
from typer.testing import CliRunner

from beamsearch.app import start_run
from beamsearch.cli import app
from beamsearch.estimate import estimate, plan_calls, time_lower_bound
from beamsearch.precedence import resolve


def _task(name: str) -> str:
    """Step task names as the plan counts them: expand_what/how -> expand, refine_what/how -> refine."""
    return name.split("_")[0] if name.startswith(("expand_", "refine_")) else name


@pytest.mark.parametrize("flags", [
    {"n": 9, "m": 3, "iterations": 4},
    {"n": 7, "m": 3, "iterations": 3, "elitism": False},
    {"n": 5, "m": 5, "iterations": 2},
])
def test_plan_matches_the_steps_a_simulator_run_records(tmp_path, flags) -> None:
    """Every call is planned: exactly, but for the final check, whose count depends on how many of the
    last survivors were judged only once (between the plan's fewest and most). Repeats are not checked
    here (variants: none): their re-asks and skipped lanes depend on the answers, like retries."""
    settings = sim_settings(tmp_path, variants=None, **flags)
    result = asyncio.run(start_run(settings))
    assert result.status == "done"
    events = read_events(result.store.path)
    recorded = Counter()
    for task, count in step_tasks(events).items():
        recorded[_task(task)] += count
    plan = plan_calls(settings)
    most, fewest = plan.by_task(), plan.by_task(fewest=True)
    assert set(most) == set(recorded)
    for task, count in recorded.items():
        assert fewest[task] <= count <= most[task], task
        if task not in ("judge_alignment", "judge_aesthetic"):
            assert count == most[task], task
    final = plan.iterations[-1]
    assert final.dimension == "final" and sum(final.calls.values()) == 2 * (3 if flags.get("elitism", True) else 4) \
        or flags["m"] == 5
    last = flags["iterations"]  # the final check's judgings sit in the iteration after the last
    rejudged = [e for e in events if e["type"] == "step" and "/keep-" in e["key"] and not e["key"].startswith(f"i{last}/")]
    assert len(rejudged) == (2 * flags["m"] * (flags["iterations"] - 1) if flags.get("elitism", True) else 0)


def test_n9_m3_four_iterations_counts_and_cost_range_hold_for_the_run(tmp_path) -> None:
    settings = sim_settings(tmp_path, n=9, m=3, iterations=4, **SEED)
    planned = estimate(settings)
    # 2N expansions + per candidate (1 combine, 1 image, 2 judges) + per refinement (M critiques + N refines)
    assert planned.plan.by_service() == {"text": 2 * 9 + 4 * 9 + 3 * (3 + 9), "image": 4 * 9, "vision": 2 * 4 * 9}
    result = asyncio.run(start_run(settings))
    steps = [e for e in read_events(result.store.path) if e["type"] == "step"]
    assert dict(Counter(e["service"] for e in steps)) == planned.plan.by_service()
    spent = sum(e["cost"] for e in steps)
    assert planned.cost["low_usd"] <= spent <= planned.cost["high_usd"]


def test_time_lower_bound_takes_the_tightest_of_chain_concurrency_and_rate(tmp_path) -> None:
    chain = sim_settings(tmp_path, **SEED, **{"n": 4, "m": 2, "iterations": 2, "sim.latency.text.mean": 1.0,
                                      "sim.latency.image.mean": 5.0, "sim.latency.vision.mean": 2.0})
    bound = time_lower_bound(plan_calls(chain), chain)
    # iteration 0: expand + combine + image + judge = 1 + 1 + 5 + 2; iteration 1 adds critique and refine.
    assert [i["seconds"] for i in bound["per_iteration"]] == [9.0, 10.0]
    assert {i["bound_by"] for i in bound["per_iteration"]} == {"chain"}

    narrow = sim_settings(tmp_path, **{"n": 4, "m": 2, "iterations": 1, "sim.latency.image.mean": 5.0,
                                       "limits.image.concurrency": 1})
    assert time_lower_bound(plan_calls(narrow), narrow)["per_iteration"][0] == {
        "iteration": 0, "dimension": "expand", "seconds": 20.0, "bound_by": "image concurrency"}

    slow_rate = sim_settings(tmp_path, **{"n": 8, "m": 2, "iterations": 1, "limits.image.rpm": 6,
                                          "limits.window_s": 10})
    # one request may start per 10 s window (6 per minute over 10 s): the 8th starts 70 s after the first
    assert time_lower_bound(plan_calls(slow_rate), slow_rate)["per_iteration"][0] == {
        "iteration": 0, "dimension": "expand", "seconds": 70.0, "bound_by": "image rate"}

    # 4 images per iteration fit one window (8 starts per 9.6 s at 50 rpm), but the window does not refill
    # between iterations: the last 8 of the 16 images wait one window.
    spread = sim_settings(tmp_path, **{"n": 4, "m": 2, "iterations": 4, "limits.image.rpm": 50, "limits.window_s": 10})
    bound = time_lower_bound(plan_calls(spread), spread)
    assert bound["bound_by"] == "image rate over the whole run" and bound["seconds"] == pytest.approx(9.6)
    assert all(i["seconds"] == 0 for i in bound["per_iteration"])


def test_real_models_are_priced_from_the_table_and_unknown_models_are_named(tmp_path) -> None:
    known = estimate(resolve(None, {"n": 9, "m": 3, "iterations": 4}, environ={}))
    assert 0 < known.cost["low_usd"] < known.cost["high_usd"]
    assert known.cost["unpriced_models"] == []
    assert known.time["latency_assumed"]["image"] > known.time["latency_assumed"]["text"]
    unknown = estimate(resolve(None, {"text.model": "my-local-llm", "vision.model": "my-local-llm"}, environ={}))
    assert unknown.cost["unpriced_models"] == ["my-local-llm"]
    assert unknown.cost["by_service"]["text"] == {"low_usd": 0.0, "high_usd": 0.0}
    assert any("my-local-llm" in note for note in unknown.notes)


def test_estimate_command_calls_nothing_and_writes_nothing(tmp_path) -> None:
    runs = tmp_path / "runs"
    result = CliRunner().invoke(app, ["estimate", "--provider", "sim", "-n", "9", "-m", "3", "--iterations", "4",
                                      "--runs-dir", str(runs), "--json"], env={"OPENAI_API_KEY": ""})
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    # the seed's 2 * 4 * 9 judge calls, plus 2 for each of 3 kept parents in 3 refinement iterations, plus
    # at most 2 for each of the 3 final survivors (the final check)
    assert data["calls"]["by_service"] == {"text": 90, "image": 36, "vision": 72 + 2 * 3 * 3 + 2 * 3}
    assert [p["dimension"] for p in data["calls"]["per_iteration"]] == ["expand", "what", "how", "what", "final"]
    assert not runs.exists()

    text = CliRunner().invoke(app, ["estimate", "-n", "4", "-m", "2", "--iterations", "3"], env={"OPENAI_API_KEY": ""})
    assert text.exit_code == 0, text.output
    assert "time lower bound" in text.stdout and "image" in text.stdout and "$" in text.stdout


def test_estimate_refuses_bad_settings_in_one_sentence() -> None:
    result = CliRunner().invoke(app, ["estimate", "-n", "2", "-m", "3"])
    assert result.exit_code == 2
    assert "cannot be larger than" in result.output and "Traceback" not in result.output


def test_the_final_check_is_named_as_such_in_the_time_bound() -> None:
    from typer.testing import CliRunner

    from beamsearch.cli import app

    result = CliRunner().invoke(app, ["estimate", "--provider", "sim", "-n", "4", "-m", "2", "--iterations", "3"],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    line = next(text for text in result.output.splitlines() if text.startswith("per iteration:"))
    assert "final check:" in line and "3:" not in line  # iterations 0-2, then the final check, not an iteration 3
