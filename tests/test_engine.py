"""The engine's promises: streaming lanes, the ranking barrier, exact call counts, exact child counts."""

from __future__ import annotations

from collections import Counter

from simhelp import SEED, Timed, read_events, sim_settings, step_tasks

from beamsearch.app import start_run
from beamsearch.engine import Candidate, rank, total_score
from beamsearch.providers.sim import Simulator
from beamsearch.schedule import children_per_parent, dimension_of


def test_children_per_parent_always_sums_to_n() -> None:
    assert children_per_parent(10, 3) == [4, 3, 3]
    assert children_per_parent(9, 3) == [3, 3, 3]
    assert children_per_parent(7, 4) == [2, 2, 2, 1]
    for n in range(1, 30):
        for m in range(1, n + 1):
            assert sum(children_per_parent(n, m)) == n


def test_dimensions_alternate_what_on_odd_how_on_even() -> None:
    assert [dimension_of(k) for k in range(5)] == ["expand", "what", "how", "what", "how"]


def test_total_score_and_deterministic_ties() -> None:
    assert total_score(80, 6, 0.7) == 0.7 * 80 + 0.3 * 60
    a = Candidate(id="i1c02", iteration=1, index=2, total=70.0)
    b = Candidate(id="i0c05", iteration=0, index=5, total=70.0)
    c = Candidate(id="i1c00", iteration=1, index=0, total=71.0)
    assert [x.id for x in rank([a, b, c])] == ["i1c00", "i0c05", "i1c02"]


async def test_exact_call_counts_for_n9_m3_three_iterations(tmp_path) -> None:
    settings = sim_settings(tmp_path, n=9, m=3, iterations=3, **SEED)
    timed = Timed(Simulator(settings.seed, settings.sim))
    result = await start_run(settings, providers=timed.providers())
    assert result.status == "done"
    events = read_events(result.store.path)
    tasks = step_tasks(events)
    assert tasks == Counter({"expand_what": 9, "expand_how": 9, "combine": 27, "image": 27, "judge_alignment": 27,
                             "judge_aesthetic": 27, "critique": 6, "refine_what": 9, "refine_how": 9})
    by_service = Counter(e["service"] for e in events if e["type"] == "step")
    assert by_service == {"text": 9 + 9 + 27 + 6 + 18, "image": 27, "vision": 54}
    # the provider was asked exactly once per step: nothing hidden, nothing repeated
    starts = Counter(key for _, what, key in timed.log if what == "start")
    assert sum(starts.values()) == 69 + 27 + 54 and max(starts.values()) == 1


async def test_n10_m3_gives_exactly_ten_children_each_iteration(tmp_path) -> None:
    settings = sim_settings(tmp_path, n=10, m=3, iterations=3, **SEED)
    result = await start_run(settings)
    candidates = [e for e in read_events(result.store.path) if e["type"] == "candidate"]
    per_iteration = Counter(c["iteration"] for c in candidates)
    assert per_iteration == {0: 10, 1: 10, 2: 10}
    for k in (1, 2):
        parents = Counter(c["parent"] for c in candidates if c["iteration"] == k)
        assert sorted(parents.values(), reverse=True) == [4, 3, 3]
        ranking = next(e for e in read_events(result.store.path) if e["type"] == "ranking" and e["iteration"] == k - 1)
        assert set(parents) == set(ranking["survivors"])
    ids = [c["id"] for c in candidates]
    assert len(ids) == len(set(ids)) and "i2c09" in ids


async def test_slow_image_does_not_hold_other_lanes(tmp_path) -> None:
    settings = sim_settings(tmp_path, n=4, m=2, iterations=1)
    timed = Timed(Simulator(settings.seed, settings.sim), delay=lambda key: 0.4 if key == "i0/c00/image" else 0.0)
    await start_run(settings, providers=timed.providers())
    slow_image_done = timed.when("end", "i0/c00/image")
    for lane in ("c01", "c02", "c03"):
        assert timed.when("start", f"i0/{lane}/judge_alignment") < slow_image_done
        assert timed.when("end", f"i0/{lane}/judge_aesthetic") < slow_image_done


async def test_judges_run_in_parallel(tmp_path) -> None:
    settings = sim_settings(tmp_path, n=2, m=1, iterations=1)
    timed = Timed(Simulator(settings.seed, settings.sim), delay=lambda key: 0.2 if "judge_" in key else 0.0)
    await start_run(settings, providers=timed.providers())
    assert timed.when("start", "i0/c00/judge_aesthetic") < timed.when("end", "i0/c00/judge_alignment")


async def test_ranking_waits_for_every_lane(tmp_path) -> None:
    settings = sim_settings(tmp_path, n=5, m=2, iterations=2)
    timed = Timed(Simulator(settings.seed, settings.sim), delay=lambda key: 0.3 if key == "i0/c03/judge_aesthetic" else 0.0)
    result = await start_run(settings, providers=timed.providers())
    events = read_events(result.store.path)
    ranking_at = next(i for i, e in enumerate(events) if e["type"] == "ranking" and e["iteration"] == 0)
    first_logged: dict[str, int] = {}  # a kept parent judged again is logged again, after the ranking
    for i, e in enumerate(events):
        if e["type"] == "candidate" and e["iteration"] == 0:
            first_logged.setdefault(e["id"], i)
    assert len(first_logged) == 5 and max(first_logged.values()) < ranking_at
    # and no iteration-1 work started before the slowest iteration-0 lane finished
    slowest = timed.when("end", "i0/c03/judge_aesthetic")
    assert all(t >= slowest for t, what, key in timed.log if what == "start" and key.startswith("i1/"))


async def test_children_of_a_fast_critique_start_before_a_slow_critique_ends(tmp_path) -> None:
    settings = sim_settings(tmp_path, n=6, m=3, iterations=2)
    slow: dict[str, str] = {}

    def delay(key: str) -> float:
        if key.endswith("/critique") and not slow:
            slow["key"] = key  # the first critique asked for is the slow one
            return 0.5
        return 0.0

    timed = Timed(Simulator(settings.seed, settings.sim), delay=delay)
    result = await start_run(settings, providers=timed.providers())
    slow_parent = slow["key"].split("/")[1].removeprefix("p-")
    slow_end = timed.when("end", slow["key"])
    candidates = [e for e in read_events(result.store.path) if e["type"] == "candidate" and e["iteration"] == 1]
    other_lanes = [c["id"][2:] for c in candidates if c["parent"] != slow_parent]
    own_lanes = [c["id"][2:] for c in candidates if c["parent"] == slow_parent]
    assert other_lanes and own_lanes
    refine_starts = {lane: timed.when("start", f"i1/{lane}/refine_what") for lane in other_lanes + own_lanes}
    assert all(refine_starts[lane] < slow_end for lane in other_lanes)
    assert all(timed.when("end", f"i1/{lane}/judge_alignment") < slow_end for lane in other_lanes)
    assert all(refine_starts[lane] >= slow_end for lane in own_lanes)


async def test_failed_lanes_leave_the_ranking_and_the_run_goes_on(tmp_path) -> None:
    settings = sim_settings(tmp_path, n=4, m=2, iterations=2, **{"retries.max_attempts": 1, "sim.policy_words": ["yellow"],
                                                               "retries.max_rephrases": 0})
    result = await start_run(settings)
    events = read_events(result.store.path)
    failed = [e for e in events if e["type"] == "lane_failed"]
    ranking = [e for e in events if e["type"] == "ranking"]
    assert failed, "some image prompts mention yellow and are refused"
    for event in ranking:
        assert not {f["id"] for f in failed} & {cid for cid, _ in event["pool"]}
    assert result.summary["best"] is not None


async def test_too_few_survivors_stops_the_run_as_failed(tmp_path) -> None:
    settings = sim_settings(tmp_path, n=3, m=1, iterations=2, **{"sim.failure_rate": 1.0, "retries.max_attempts": 2,
                                                               "retries.backoff_initial": 0})
    result = await start_run(settings)
    assert result.status == "failed" and result.exit_code == 1
    assert "0 of 3 candidates of iteration 0 succeeded" in result.error.message


async def test_elitism_keeps_the_best_and_best_ever_is_the_answer(tmp_path) -> None:
    # the seed's scores: one draw each, so the best so far is a running maximum (with rejudging a kept
    # best's score is the average of its draws, and may fall: see test_variants)
    settings = sim_settings(tmp_path, n=4, m=2, iterations=4, **SEED)
    result = await start_run(settings)
    bests = [it["best_total"] for it in result.summary["iterations"]]
    assert bests == sorted(bests)
    all_totals = [c["total"] for c in result.summary["candidates"]]
    assert result.summary["best"]["total"] == max(all_totals)


async def test_without_elitism_children_alone_are_ranked(tmp_path) -> None:
    settings = sim_settings(tmp_path, n=4, m=2, iterations=3, elitism=False)
    result = await start_run(settings)
    for it in result.summary["iterations"]:
        assert all(cid.startswith(f"i{it['iteration']}c") for cid, _ in it["pool"])


async def test_target_score_stops_early(tmp_path) -> None:
    settings = sim_settings(tmp_path, n=4, m=2, iterations=6, target_score=1)
    result = await start_run(settings)
    assert len(result.summary["iterations"]) == 1 and "target score" in result.summary["reason"]


async def test_patience_stops_when_nothing_improves(tmp_path) -> None:
    settings = sim_settings(tmp_path, n=3, m=1, iterations=8, patience=1, min_improvement=100)
    result = await start_run(settings)
    assert len(result.summary["iterations"]) == 2 and "no improvement" in result.summary["reason"]
