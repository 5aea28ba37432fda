"""No paying twice for one picture, a fair ranking across iterations, and the refinement schedule."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from simhelp import SEED, Timed, read_events, sim_settings, step_tasks

from beamsearch.app import resume_run, start_run
from beamsearch.estimate import plan_calls
from beamsearch.providers.base import TextRequest, TextResult
from beamsearch.providers.sim import Simulator
from beamsearch.variants import normal


class Stubborn(Timed):
    """The simulator, with a refiner that repeats the text it is given (the 'current' half), ignores
    which sibling it writes for, and finds one new take when told which versions are taken: a
    deterministic stand-in for a refiner that repeats itself."""

    def __init__(self, simulator: Simulator, delay=None, gives_up_after: int = 1) -> None:
        super().__init__(simulator, delay)
        self.gives_up_after = gives_up_after

    async def complete(self, request: TextRequest) -> TextResult:
        if request.task != "refine":
            return await super().complete(request)
        self._mark("start", request.key)
        try:
            current = request.variables["current"]
            avoid = request.variables.get("avoid") or []
            if avoid and len(avoid) <= self.gives_up_after:  # told what is taken: one new take, the same for all
                text = f"{current} (take {len(avoid)})"
            else:
                text = current  # the parent's own text again
            return TextResult(text=text, usage=(await self.sim.complete(request)).usage)
        finally:
            self._mark("end", request.key)


def rendered_pairs(events: list[dict]) -> list[tuple[str, str]]:
    ids = {e["result"]["path"].rsplit("/", 1)[-1].split(".")[0] for e in events
           if e["type"] == "step" and e["service"] == "image" and "path" in e["result"]}
    latest = {e["id"]: e for e in events if e["type"] == "candidate"}
    return [(normal(latest[i]["what"]), normal(latest[i]["how"])) for i in sorted(ids)]


async def test_a_repeating_refiner_never_makes_the_same_picture_twice(tmp_path: Path) -> None:
    settings = sim_settings(tmp_path, n=6, m=2, iterations=3)
    timed = Stubborn(Simulator(settings.seed, settings.sim))
    result = await start_run(settings, providers=timed.providers())
    assert result.status == "done"
    events = read_events(result.store.path)
    pairs = rendered_pairs(events)
    assert len(pairs) == len(set(pairs)), "a pair was rendered twice"
    tasks = step_tasks(events)
    assert tasks["image"] == len(pairs)
    # each child repeated its parent first, so all 6 lanes of both refinement iterations were asked again;
    # the first child of each family keeps the new take, its two siblings repeat it, are asked a second
    # time, repeat their parent again and are skipped: their variants (2) are spent
    again = Counter(e["key"].rsplit(".", 1)[-1] for e in events if e["type"] == "step" and "/refine_" in e["key"]
                    and ".v" in e["key"])
    assert again == {"v1": 12, "v2": 8}
    skipped = [e for e in events if e["type"] == "lane_skipped"]
    assert len(skipped) == 8 and all(e["repeats"] for e in skipped)
    assert result.summary["skipped"] and {s["id"] for s in result.summary["skipped"]} == {e["id"] for e in skipped}
    assert not any(e["type"] == "step" and e["key"].startswith(tuple(f"i{e2['iteration']}/c{e2['id'].split('c')[-1]}/image"
                                                                     for e2 in skipped)) for e in events)
    ranking = next(e for e in events if e["type"] == "ranking" and e["iteration"] == 1)
    assert set(ranking["skipped"]) == {e["id"] for e in skipped if e["iteration"] == 1}


async def test_the_decisions_do_not_depend_on_timing(tmp_path: Path) -> None:
    """Which sibling keeps a pair is decided by lane order: slow and fast lanes decide the same."""
    outcomes = []
    first_slow = lambda key: 0.05 if "/c00/" in key or "/c03/" in key else 0.0  # noqa: E731 - a family's first child
    others_slow = lambda key: 0.0 if "/c00/" in key or "/c03/" in key else 0.05  # noqa: E731
    for name, delay in (("first slow", first_slow), ("others slow", others_slow)):
        settings = sim_settings(tmp_path / name, n=6, m=2, iterations=3)
        timed = Stubborn(Simulator(settings.seed, settings.sim), delay=delay)
        result = await start_run(settings, providers=timed.providers())
        outcomes.append(([(c["id"], c["what"], c["how"]) for c in result.summary["candidates"]],
                         sorted(s["id"] for s in result.summary["skipped"])))
    assert outcomes[0] == outcomes[1]


async def test_resume_replays_asked_again_variants_without_asking_again(tmp_path: Path) -> None:
    settings = sim_settings(tmp_path, n=6, m=2, iterations=2)
    first = await start_run(settings, providers=Stubborn(Simulator(settings.seed, settings.sim)).providers())
    before = {e["key"] for e in read_events(first.store.path) if e["type"] == "step"}
    assert any(".v1" in key for key in before)
    extended = Stubborn(Simulator(settings.seed, settings.sim))
    again = await resume_run(first.store.path, flags={"iterations": 3}, providers=extended.providers(), environ={})
    assert again.status == "done"
    asked = {key for _, what, key in extended.log if what == "start"}
    assert asked and not before & asked
    keys = Counter(e["key"] for e in read_events(first.store.path) if e["type"] == "step")
    assert max(keys.values()) == 1


async def test_with_variants_none_repeats_are_rendered_as_the_seed_did(tmp_path: Path) -> None:
    settings = sim_settings(tmp_path, n=4, m=2, iterations=2, **SEED)
    result = await start_run(settings, providers=Stubborn(Simulator(settings.seed, settings.sim)).providers())
    events = read_events(result.store.path)
    pairs = rendered_pairs(events)
    assert len(pairs) == 8 and len(set(pairs)) < 8  # children equal to their parent were paid for again
    assert not [e for e in events if e["type"] == "lane_skipped"]


async def test_kept_parents_are_judged_again_and_the_final_survivors_once_more(tmp_path: Path) -> None:
    settings = sim_settings(tmp_path, n=6, m=2, iterations=3)
    result = await start_run(settings)
    events = read_events(result.store.path)
    rankings = {e["iteration"]: e for e in events if e["type"] == "ranking"}
    for k in (1, 2):  # every kept parent of iteration k was judged again in it, under its own keys
        for parent in rankings[k - 1]["survivors"]:
            assert {f"i{k}/keep-{parent}/judge_alignment", f"i{k}/keep-{parent}/judge_aesthetic"} <= {
                e["key"] for e in events if e["type"] == "step"}
    final = next(e for e in events if e["type"] == "final_check")
    assert {cid for cid, _ in final["pool"]} >= set(rankings[2]["survivors"])
    latest = {c["id"]: c for c in result.summary["candidates"]}
    assert result.summary["best"]["id"] == final["best"]
    best = latest[final["best"]]
    assert len(best["judgements"]) >= 2  # the answer is never a single draw
    assert best["alignment"] == pytest.approx(sum(a for a, _ in best["judgements"]) / len(best["judgements"]), abs=1e-3)
    assert best["total"] == max(total for _, total in final["pool"])


@pytest.mark.parametrize("refine", ["both", "weakest"])
async def test_the_refinement_schedule_is_a_setting(tmp_path: Path, refine: str) -> None:
    settings = sim_settings(tmp_path, n=4, m=2, iterations=3, refine=refine, variants=None)
    result = await start_run(settings)
    events = read_events(result.store.path)
    children = [c for c in result.summary["candidates"] if c["iteration"] > 0]
    tasks = Counter(e["key"].split("/")[-1] for e in events if e["type"] == "step")
    if refine == "both":
        assert {c["refined"] for c in children} == {"both"}
        assert tasks["refine_what"] == tasks["refine_how"] == 8
    else:
        ranked_at = {e["iteration"]: i for i, e in enumerate(events) if e["type"] == "ranking"}
        for c in children:  # the parent as it was when its children's iteration began
            seen = [e for e in events[: ranked_at[c["iteration"] - 1]] if e["type"] == "candidate" and e["id"] == c["parent"]]
            expected = "what" if seen[-1]["alignment"] / 100 <= seen[-1]["aesthetic"] / 10 else "how"
            assert c["refined"] == expected, c["id"]
        assert tasks["refine_what"] + tasks["refine_how"] == 8
    plan = plan_calls(settings)
    assert plan.by_task()["refine"] == (16 if refine == "both" else 8)
    assert [e["dimension"] for e in events if e["type"] == "ranking"] == ["expand", refine, refine]
    json.dumps(result.summary)  # plain data
