"""The benchmark's bounds on hand-made logs, and the whole suite on a tiny case (no timing is asserted)."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks import bounds, run


def step(key: str, latency: float) -> dict[str, Any]:
    return {"type": "step", "key": key, "meta": {"latency": latency}}


def two_iteration_log() -> list[dict[str, Any]]:
    """Two lanes in iteration 0, two children of i0c00 in iteration 1, and keys that belong to no lane."""
    return [
        step("run/checklist", 9.0),
        step("i0/c00/expand_what", 0.2), step("i0/c00/expand_how", 0.3), step("i0/c00/combine", 0.1),
        step("i0/c00/image", 1.0), step("i0/c00/judge_alignment", 0.3), step("i0/c00/judge_aesthetic", 0.4),
        step("i0/c01/expand_what", 0.1), step("i0/c01/expand_how", 0.1), step("i0/c01/combine", 0.1),
        step("i0/c01/image", 2.0), step("i0/c01/judge_alignment", 0.2), step("i0/c01/judge_aesthetic", 0.1),
        {"type": "candidate", "id": "i0c00", "parent": None},
        {"type": "candidate", "id": "i0c01", "parent": None},
        step("i1/p-i0c00/critique", 0.5),
        step("i1/pair-i0c00-i0c01/judge_pairwise", 7.0),
        step("i1/c00/refine_what", 0.2), step("i1/c00/combine", 0.1), step("i1/c00/image", 1.0),
        step("i1/c00/judge_alignment", 0.3), step("i1/c00/judge_aesthetic", 0.3),
        step("i1/c01/refine_what", 0.2), step("i1/c01/combine", 0.1), step("i1/c01/image", 0.5),
        step("i1/c01/image.r1", 0.5), step("i1/c01/rephrase.r1", 0.2),
        step("i1/c01/judge_alignment", 0.2), step("i1/c01/judge_aesthetic", 0.6),
        {"type": "candidate", "id": "i1c00", "parent": "i0c00"},
        {"type": "candidate", "id": "i1c01", "parent": "i0c00"},
    ]


def test_lane_chains_follow_each_lane_and_its_parents_critique() -> None:
    chains = {(c.iteration, c.lane): c for c in bounds.lane_chains(two_iteration_log())}
    assert set(chains) == {(0, "c00"), (0, "c01"), (1, "c00"), (1, "c01")}
    # parallel expands and judges count once (the slower), the rest adds up
    assert chains[(0, "c00")].before_image == pytest.approx(0.3 + 0.1)
    assert chains[(0, "c00")].image_and_after == pytest.approx(1.0 + 0.4)
    assert chains[(0, "c01")].total == pytest.approx(0.1 + 0.1 + 2.0 + 0.2)
    # a child waits for its parent's critique; a rephrased image pays every round
    assert chains[(1, "c00")].before_image == pytest.approx(0.5 + 0.2 + 0.1)
    assert chains[(1, "c01")].image_and_after == pytest.approx(0.5 + 0.5 + 0.2 + 0.6)


def test_critical_path_sums_the_slowest_lane_of_each_iteration() -> None:
    chains = bounds.lane_chains(two_iteration_log())
    assert bounds.critical_path_bound(chains) == pytest.approx(2.4 + 2.6)
    padded = bounds.lane_chains(two_iteration_log(), extra={"i0/c00/image": 5.0})
    assert bounds.critical_path_bound(padded) == pytest.approx((0.4 + 6.4) + 2.6)


def test_rate_limited_bound_spaces_images_by_the_window() -> None:
    chains = [bounds.LaneChain(0, f"c{j}", 0.0, 1.0) for j in range(6)]
    assert bounds.window_scheme(60.0, 2.0) == (2, 2.0)
    # 2 images per 2 s: starts 0,0,2,2,4,4; the last ends at 5
    assert bounds.rate_limited_bound(chains, 60.0, 2.0) == pytest.approx(5.0)
    assert bounds.first_come_schedule(chains, 60.0, 2.0) == pytest.approx(5.0)
    assert bounds.requests_over_rate(6, 60.0) == pytest.approx(6.0)
    # a generous limit leaves the critical path
    assert bounds.rate_limited_bound(chains, 6000.0, 1.0) == pytest.approx(1.0)


def test_rate_bound_is_below_what_first_come_can_do_when_the_slow_image_comes_last() -> None:
    chains = [bounds.LaneChain(0, "a", 0.0, 1.0), bounds.LaneChain(0, "b", 0.1, 1.0),
              bounds.LaneChain(0, "c", 0.2, 3.0)]
    ideal, greedy = bounds.rate_limited_bound(chains, 60.0, 1.0), bounds.first_come_schedule(chains, 60.0, 1.0)
    assert greedy == pytest.approx(2.0 + 3.0)  # c starts third, at 2 s, and takes 3 s
    assert ideal == pytest.approx(3.2)  # knowing c is slow, start it first: c's own chain is the bound


def test_window_check_catches_a_burst() -> None:
    steady = bounds.check_window([0.0, 0.0, 2.0, 2.0, 4.0], 60.0, 2.0)
    assert steady.within(60.0) and steady.max_in_period == 2
    burst = bounds.check_window([0.0, 0.0, 1.0, 2.0], 60.0, 2.0)
    assert not burst.within(60.0) and burst.max_in_period == 3


def test_the_quick_suite_runs_every_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    results = run.main(["--quick"])
    assert set(run.SCENARIOS) <= set(results)
    for row in results["efficiency"]:
        # 8 lanes; a lane whose every variant repeated a prompt is not rendered
        assert row["lanes"] == 8 and 0 < row["candidates"] <= 8 and row["bound"] > 0 and row["wall"] >= row["bound"]
    limited = results["rate_limited"][0]
    assert limited["limit_respected"] and 0 < limited["images"] <= 8
    assert limited["wall"] >= limited["rate_bound"]
    assert results["staged"]["staged"] > 0 and results["staged"]["streaming"] > 0
    assert [o["weight"] for o in results["overhead"]] == ["photo-like", "flat"]
    for row in results["overhead"]:
        assert row["lanes"] == 8 and row["max_rss_mb"] > 0 and row["image_mb_written"] > 0
    photo, flat = results["overhead"]
    assert photo["image_kb_each"] > 5 * flat["image_kb_each"]  # the grained image weighs like a photograph
    assert results["startup"]["median"] > 0
    for name in ("real_path", "default_limits"):  # the CLI over loopback HTTP: every request joined to a step
        row = results[name]
        assert row["candidates"] == 4 and row["unmatched_steps"] == 0 and row["requests"] == row["steps"] > 0
        assert row["wall"] > row["span"] > 0 and row["startup"] > 0 and row["tail"] > 0 and row["bound"] > 0
    assert results["default_limits"]["rate_respected"] and results["default_limits"]["window_s"] == 60
    per_request = results["sdk_overhead"]["ms_cpu_per_request"]
    assert set(per_request) == {"typed", "provider", "bare"} and all(v > 0 for v in per_request["provider"].values())
    table = capsys.readouterr().out
    assert "| 4 / 2 / 2 | real |" in table and "Start-up: `" in table and "| real_path (image" in table
