"""Judging users can trust (issue 7): checklist alignment, pairwise ranking in both orders, repeated
judging, agreement figures; every mode offline in the simulator, replayed on resume, counted by estimate."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
from simhelp import RICH_IDEA, SEED, Timed, read_events, sim_settings, step_tasks

from beamsearch.app import resume_run, start_run
from beamsearch.errors import InvalidAnswer
from beamsearch.estimate import plan_calls
from beamsearch.judging import (
    Judging,
    JudgingSettings,
    Tournament,
    checklist_score,
    copeland,
    effective,
    finalists_count,
    majority,
    mean_and_spread,
    pairwise_pair_bounds,
    parse_checks,
    validate_checklist,
)
from beamsearch.providers.sim import Simulator
from beamsearch.providers.sim_judging import critique_view, make_checklist
from beamsearch.schemas import ChecklistAnswer, ChecklistJudgeAnswer, PairwiseAnswer, strict_json_schema

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.judging_methods import experiment  # noqa: E402


def q(qid: str, weight: float = 1.0, deps: tuple[str, ...] = (), category: str = "entity") -> dict:
    return {"id": qid, "question": f"question {qid}?", "category": category, "element": qid,
            "depends_on": list(deps), "weight": weight}


# --- checklist arithmetic -------------------------------------------------------------------------


def test_a_question_counts_only_when_what_it_depends_on_counts() -> None:
    questions = validate_checklist([q("boat", 2), q("red", 1, ("boat",), "attribute"), q("night", 1, (), "scene"),
                                    q("whole", 1, ("boat", "red"), "whole")])
    # the colour was answered yes, but there is no boat: neither the colour nor the whole picture counts
    counted = effective(questions, {"boat": False, "red": True, "night": True, "whole": True})
    assert counted == {"boat": False, "red": False, "night": True, "whole": False}
    assert checklist_score(questions, counted) == pytest.approx(100 * 1 / 5)
    everything = effective(questions, dict.fromkeys(["boat", "red", "night", "whole"], True))
    assert checklist_score(questions, everything) == 100.0


@pytest.mark.parametrize("questions, problem", [
    ([], "no questions"),
    ([q("a"), q("a")], "repeats"),
    ([q("a", deps=("b",))], "not another question"),
    ([q("a", deps=("a",))], "not another question"),
    ([q("a", deps=("b",)), q("b", deps=("a",))], "cycle"),
])
def test_a_checklist_that_cannot_be_scored_is_an_invalid_answer(questions, problem) -> None:
    with pytest.raises(InvalidAnswer, match=problem):
        validate_checklist(questions)


def test_every_question_must_be_answered() -> None:
    questions = validate_checklist([q("a"), q("b")])
    assert parse_checks(questions, [{"id": "a", "answer": "yes"}, {"id": "b", "answer": "no"},
                                    {"id": "zz", "answer": "yes"}]) == {"a": True, "b": False}
    with pytest.raises(InvalidAnswer, match="did not answer question b"):
        parse_checks(questions, [{"id": "a", "answer": "yes"}])


def test_nested_answer_schemas_are_strict() -> None:
    def walk(node):
        if isinstance(node, dict):
            assert "$ref" not in node and "title" not in node and "default" not in node
            if node.get("type") == "object":
                assert node["additionalProperties"] is False and node["required"] == list(node["properties"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for model in (ChecklistAnswer, ChecklistJudgeAnswer, PairwiseAnswer):
        walk(strict_json_schema(model))
    question = strict_json_schema(ChecklistAnswer)["properties"]["questions"]["items"]
    assert question["properties"]["category"]["enum"] == ["entity", "attribute", "relation", "scene", "whole"]


def test_repeated_answers_average_and_keep_their_spread() -> None:
    assert mean_and_spread([60.0, 70.0, 80.0]) == (70.0, pytest.approx(8.165, abs=1e-3))
    assert mean_and_spread([42.0]) == (42.0, 0.0)
    assert majority([["a", "b"], ["a"], ["a", "c"]]) == ["a"]
    assert majority([["x", "y"]]) == ["x", "y"]


# --- pairwise arithmetic --------------------------------------------------------------------------


def test_pair_bounds_and_finalists() -> None:
    assert pairwise_pair_bounds(6, None) == (5, 15)
    assert pairwise_pair_bounds(6, 8) == (5, 8)
    assert pairwise_pair_bounds(6, 3) == (3, 3)
    assert pairwise_pair_bounds(1, None) == (0, 0)
    assert finalists_count(12, 3, None) == 6 and finalists_count(3, 3, None) == 3 and finalists_count(12, 1, 7) == 7


def test_transitivity_and_copeland() -> None:
    t = Tournament()
    t.add_win("a", "b")
    t.add_win("b", "c")
    assert t.implies("a", "c") and not t.implies("c", "a")
    comparisons = [{"pair": ["a", "b"], "winner": "a", "agree": True}, {"pair": ["b", "c"], "winner": "b", "agree": True},
                   {"pair": ["c", "d"], "agree": False}]
    assert copeland(["a", "b", "c", "d"], comparisons, [{"pair": ["a", "c"], "implied": "a"}]) == {
        "a": 2.0, "b": 1.0, "c": 0.5, "d": 0.5}


class BiasedJudge:
    """Fake steps: a true order (lower number is better) and a judge that prefers the first image when
    the two are within `bias` of each other; records every comparison it is asked."""

    def __init__(self, quality: dict[str, float], bias: float) -> None:
        self.quality, self.bias, self.asked = quality, bias, []

    async def judge_pairwise(self, iteration, first, second, idea, alpha) -> str:
        self.asked.append((first.id, second.id))
        return "first" if self.quality[first.id] + self.bias >= self.quality[second.id] else "second"


def pool(*ids: str) -> list[SimpleNamespace]:
    return [SimpleNamespace(id=i, image=f"images/{i}.png") for i in ids]


async def test_both_orders_cancel_a_first_position_bias_and_transitivity_skips_pairs() -> None:
    # the score order is wrong at the top (b is truly best); c and d are too close for this biased judge
    judge = BiasedJudge({"a": 80, "b": 90, "c": 60, "d": 59, "e": 40}, bias=3)
    judging = Judging(JudgingSettings(ranking="pairwise", finalists=5), judge, "idea", 0.7, m=2)
    ranked, record = await judging.rank(0, pool("a", "b", "c", "d", "e"))
    assert [c.id for c in ranked][:2] == ["b", "a"]
    asked = Counter(judge.asked)
    for a, b in (tuple(c["pair"]) for c in record["comparisons"]):
        assert asked[(a, b)] == 1 and asked[(b, a)] == 1, "every compared pair is asked in both orders"
    tie = next(c for c in record["comparisons"] if set(c["pair"]) == {"c", "d"})
    assert tie["agree"] is False and "winner" not in tie  # the bias decided both orders: a tie, not a win
    low, high = pairwise_pair_bounds(5, None)
    assert low <= record["pairs"] < high and record["skipped"], "some pairs follow by transitivity"
    assert len(judge.asked) == 2 * record["pairs"]


async def test_max_pairs_bounds_the_calls() -> None:
    judge = BiasedJudge({i: float(n) for n, i in enumerate("abcdefgh")}, bias=0)
    judging = Judging(JudgingSettings(ranking="pairwise", finalists=8, max_pairs=4), judge, "idea", 0.7, m=2)
    ranked, record = await judging.rank(0, pool(*"abcdefgh"))
    assert record["pairs"] == 4 and len(judge.asked) == 8
    assert sorted(c.id for c in ranked) == sorted("abcdefgh")


async def test_the_best_so_far_stays_a_finalist() -> None:
    judge = BiasedJudge({i: 0.0 for i in "abcdef"}, bias=0)
    candidates = pool(*"abcdef")
    judging = Judging(JudgingSettings(ranking="pairwise", finalists=3), judge, "idea", 0.7, m=1)
    _, record = await judging.rank(1, candidates, keep=candidates[5])
    assert record["finalists"] == ["a", "b", "f"]


# --- whole runs in the simulator ------------------------------------------------------------------


async def test_default_judging_is_unchanged(tmp_path) -> None:
    settings = sim_settings(tmp_path, n=4, m=2, iterations=2, **SEED)
    result = await start_run(settings)
    tasks = step_tasks(read_events(result.store.path))
    assert tasks["judge_alignment"] == 8 and tasks["judge_aesthetic"] == 8
    assert not {"checklist", "judge_checklist", "judge_pairwise"} & set(tasks)
    keys = [e["key"] for e in read_events(result.store.path) if e["type"] == "step"]
    assert not [k for k in keys if ".s" in k.rsplit("/", 1)[-1]]
    assert "pairwise" not in result.summary["judging"] and "judge_spread" not in result.summary["judging"]
    assert "<h2>Judging</h2>" not in (result.store.path / "report.html").read_text()


async def test_checklist_mode_saves_its_questions_and_the_critique_names_the_failed_ones(tmp_path) -> None:
    settings = sim_settings(tmp_path, n=5, m=2, iterations=3, alignment="checklist", **SEED)
    seen: list = []
    simulator = Simulator(settings.seed, settings.sim)
    timed = Timed(simulator)
    original = timed.complete

    async def spy(request):
        seen.append(request)
        return await original(request)

    timed.complete = spy
    result = await start_run(settings, providers=timed.providers())
    assert result.status == "done"
    events = read_events(result.store.path)
    tasks = step_tasks(events)
    assert tasks["checklist"] == 1 and tasks["judge_checklist"] == 15 and "judge_alignment" not in tasks
    saved = json.loads((result.store.path / "checklist.json").read_text())
    assert saved["questions"] == make_checklist(RICH_IDEA)
    assert {x["category"] for x in saved["questions"]} == {"entity", "attribute", "relation", "scene", "whole"}
    assert result.summary["judging"]["checklist"] == saved["questions"]
    texts = {x["question"] for x in saved["questions"]}
    candidates = [e for e in events if e["type"] == "candidate"]
    for c in candidates:
        assert set(c["checks"]) == {x["id"] for x in saved["questions"]}
        assert set(c["missing"]) <= texts and set(c["found"]) <= texts
        assert c["alignment"] == checklist_score(saved["questions"], c["checks"])
    # the critique of a parent with failed questions names them
    critiques = [r for r in seen if r.task == "critique"]
    assert critiques
    by_id = {c["id"]: c for c in candidates}
    for request in critiques:
        parent = by_id[request.key.split("/")[1].removeprefix("p-")]
        for failed in parent["missing"]:
            assert failed in request.user
    # the share of failed questions per iteration is in the summary
    shares = [it["checklist_failed_share"] for it in result.summary["iterations"]]
    assert len(shares) == 3 and all(0 <= s <= 1 for s in shares)
    report = (result.store.path / "report.html").read_text()
    assert "<h2>Judging</h2>" in report and "checklist questions failed" in report
    assert all(text in report for text in texts if "'" not in text)


def test_the_simulator_critique_reads_failed_questions_as_elements() -> None:
    questions = {x["id"]: x["question"] for x in make_checklist(RICH_IDEA)}
    view = critique_view({"idea": RICH_IDEA, "missing": [questions["e1"], questions["a1"], questions["w"], "green tree"]})
    assert view["missing"] == [make_checklist(RICH_IDEA)[0]["element"], "green tree"]


async def test_pairwise_mode_records_both_orders_under_stable_keys(tmp_path) -> None:
    settings = sim_settings(tmp_path, n=6, m=2, iterations=3, ranking="pairwise")
    result = await start_run(settings)
    assert result.status == "done"
    events = read_events(result.store.path)
    keys = {e["key"] for e in events if e["type"] == "step" and e["key"].endswith("/judge_pairwise")}
    rankings = [e for e in events if e["type"] == "ranking"]
    compared = 0
    for r in rankings:
        record = r["pairwise"]
        assert r["survivors"] == record["order"][:2] and r["best"] == result.summary["iterations"][r["iteration"]]["best_id"]
        for c in record["comparisons"]:
            a, b = c["pair"]
            assert f"i{r['iteration']}/pair-{a}-{b}/judge_pairwise" in keys
            assert f"i{r['iteration']}/pair-{b}-{a}/judge_pairwise" in keys
            compared += 1
    assert len(keys) == 2 * compared
    assert result.summary["best"]["id"] == rankings[-1]["best"]
    figures = result.summary["judging"]["pairwise"]
    assert figures["pairs"] == compared and 0 <= figures["agreement"] <= 1
    assert figures["first_shown_won"] > 0.5, "the simulator's judge favours the first image shown"
    assert "the two orders agreed on" in (result.store.path / "report.html").read_text()


async def test_repeated_judging_uses_distinct_keys_and_records_the_spread(tmp_path) -> None:
    settings = sim_settings(tmp_path, n=3, m=1, iterations=1, judge_samples=3, **SEED)
    result = await start_run(settings)
    events = read_events(result.store.path)
    steps = {e["key"]: e for e in events if e["type"] == "step"}
    for c in (e for e in events if e["type"] == "candidate"):
        lane = f"i0/c{c['index']:02d}"
        keys = [f"{lane}/judge_alignment", f"{lane}/judge_alignment.s1", f"{lane}/judge_alignment.s2"]
        scores = [steps[k]["result"]["score"] for k in keys]
        assert c["judge_samples"]["alignment"] == scores
        assert c["alignment"] == pytest.approx(sum(scores) / 3, abs=1e-3)
        assert c["judge_spread"]["alignment"] == pytest.approx(mean_and_spread(scores)[1], abs=1e-3)
        assert len(c["judge_samples"]["aesthetic"]) == 3
    assert len({tuple(c["judge_samples"]["alignment"]) for c in events if c["type"] == "candidate"}) == 3
    spread = result.summary["judging"]["judge_spread"]["alignment"]
    assert spread["mean"] > 0
    report = (result.store.path / "report.html").read_text()
    assert f"alignment judge spread (std. dev. of repeated answers): mean {spread['mean']}" in report


@pytest.mark.parametrize("flags", [
    {"alignment": "checklist"},
    {"judge_samples": 2},
    {"ranking": "pairwise"},
    {"ranking": "pairwise", "elitism": False, "pairwise.max_pairs": 3},
    {"alignment": "checklist", "ranking": "pairwise", "judge_samples": 2, "pairwise.finalists": 5},
])
async def test_estimate_counts_what_each_mode_makes(tmp_path, flags) -> None:
    settings = sim_settings(tmp_path, n=6, m=2, iterations=3, variants=None, **flags)  # repeats: like retries
    result = await start_run(settings)
    tasks = step_tasks(read_events(result.store.path))
    made = Counter()
    for task, count in tasks.items():
        made[task.split("_")[0] if task.startswith(("expand_", "refine_")) else task] += count
    plan = plan_calls(settings)
    most, fewest = plan.by_task(), plan.by_task(fewest=True)
    assert set(made) == set(most)
    for task, count in made.items():
        assert fewest[task] <= count <= most[task], task
        final_check = task != "judge_pairwise" and task.startswith("judge_") and "final" in [
            it.dimension for it in plan.iterations]
        if task != "judge_pairwise" and not final_check:
            assert count == most[task], task
    for it in plan.iterations:  # per ranking too
        if "judge_pairwise" in it.calls:
            per = sum(1 for e in read_events(result.store.path) if e["type"] == "step"
                      and e["key"].startswith(f"i{it.iteration}/pair-"))
            assert it.fewest["judge_pairwise"] <= per <= it.calls["judge_pairwise"]


async def test_resume_replays_checklist_and_comparisons(tmp_path) -> None:
    flags = {"n": 5, "m": 2, "alignment": "checklist", "ranking": "pairwise", "judge_samples": 2, "seed": 3}
    whole = await start_run(sim_settings(tmp_path / "whole", iterations=3, **flags))
    part = await start_run(sim_settings(tmp_path / "part", iterations=2, **flags))
    before = {e["key"] for e in read_events(part.store.path) if e["type"] == "step"}
    settings = sim_settings(tmp_path / "part", iterations=3, **flags)
    timed = Timed(Simulator(settings.seed, settings.sim))
    resumed = await resume_run(part.store.path, flags={"iterations": 3}, providers=timed.providers(), environ={})
    assert resumed.status == "done"
    asked = {key for _, what, key in timed.log if what == "start"}
    assert asked and not before & asked, "a recorded step was asked again"
    assert any("/pair-" in key for key in before) and "run/checklist" in before
    for summary in (resumed.summary,):
        assert summary["best"]["id"] == whole.summary["best"]["id"]
        assert [(c["id"], c["total"]) for c in summary["candidates"]] == [(c["id"], c["total"]) for c in whole.summary["candidates"]]
        assert [it["survivors"] for it in summary["iterations"]] == [it["survivors"] for it in whole.summary["iterations"]]


# --- the experiment: does each method pick the truly best candidate? ------------------------------


async def test_checklist_and_pairwise_pick_the_truly_best_at_least_as_often_as_rating() -> None:
    """Ten seeds, one pool of nine pictures per seed, judged by every method at the simulator's default
    noise (benchmarks/judging_methods.py). The simulator's 0-100 rating saturates high (it closes 40% of
    the gap to 100 before its noise), as the issue describes vision models' ratings; the checklist
    answers each yes/no question wrongly 2% of the time; pairwise verdicts are noisy and favour the first
    image by 3 points, cancelled by judging both orders. Without saturation the rating wins against this
    checklist (see BENCHMARKS.md), so this test is about the judges as modelled, not a law."""
    methods = {"rating": {}, "pairwise": {"ranking": "pairwise"}, "checklist": {"alignment": "checklist"}}
    table = await experiment((RICH_IDEA,), range(10), n=9, m=3, methods=methods)
    assert [row["trials"] for row in table.values()] == [10, 10, 10]
    assert table["pairwise"]["hits"] >= table["rating"]["hits"], table
    assert table["checklist"]["hits"] >= table["rating"]["hits"], table
