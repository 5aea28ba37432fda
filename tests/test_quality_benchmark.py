"""The quality benchmark (issue 12): its measures on hand-made logs, and a tiny run of the real thing."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

from beamsearch.providers.base import TextRequest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import quality, quality_measure, quality_stats  # noqa: E402


def judged(key: str, alignment: float, aesthetic: float, image: str | None = None) -> list[dict]:
    lane = key.replace("/", "")
    meta = {"sim_image": image} if image else {}
    return [{"type": "step", "key": f"{key}/judge_alignment", "service": "vision", "meta": {"sim_truth": alignment, **meta}},
            {"type": "step", "key": f"{key}/judge_aesthetic", "service": "vision", "meta": {"sim_truth": aesthetic, **meta}},
            {"type": "step", "key": f"{key}/image", "service": "image", "result": {"path": f"images/{lane}.png",
                                                                                    "sha256": "d-" + lane}}]


def candidate(cid: str, parent: str | None, prompt: str, total: float) -> dict:
    k, index = cid[1:].split("c")
    return {"type": "candidate", "id": cid, "iteration": int(k), "index": int(index), "parent": parent,
            "prompt": prompt, "total": total, "status": "done", "image": f"images/{cid}.png"}


def small_log() -> list[dict]:
    """Two lanes, then three children: one repeats a prompt of iteration 0, one has its parent's pixels."""
    events = [*judged("i0/c00", 50, 5), *judged("i0/c01", 80, 6),
              candidate("i0c00", None, "P0", 60.0), candidate("i0c01", None, "P1", 70.0),
              *judged("i1/c00", 90, 7), *judged("i1/c01", 40, 4), *judged("i1/c02", 60, 5),
              candidate("i1c00", "i0c01", "P2", 75.0), candidate("i1c01", "i0c01", "P0", 50.0),
              candidate("i1c02", "i0c00", "P3", 65.0)]
    events[-4]["result"]["sha256"] = "d-i0c00"  # i1c02's image step: the same bytes as its parent's
    return events


def test_truth_repeats_and_best_so_far_are_read_from_the_log() -> None:
    events = small_log()
    summary = {"iterations": [{}, {}], "best": {"id": "i1c00"}}
    m = quality_measure.measure_run(events, summary, alpha=0.7, saturation=0.5)
    assert m["true"] == pytest.approx(0.7 * 90 + 0.3 * 70)
    assert m["judge"] == 75.0 and m["judge_by_iteration"] == [70.0, 75.0]
    assert m["true_by_iteration"] == pytest.approx([0.7 * 80 + 18, 0.7 * 90 + 21])
    # without a recorded expectation, a judge without error answers the truth through the saturation
    assert m["expected_by_iteration"][0] == pytest.approx(0.7 * (80 + 0.5 * 20) + 18)
    assert (m["children"], m["prompt_repeats"], m["same_as_parent"], m["repeated"]) == (3, 1, 1, 2)
    assert m["image_seen_before"] == 1 and (m["best_changes"], m["best_changes_to_seen"]) == (1, 0)
    assert m["images"] == 5 and m["vision_calls"] == 10


def test_a_judge_step_that_names_its_image_is_matched_by_the_image() -> None:
    """A later engine may judge a kept parent again under another key: its truth is the parent's."""
    events = [*judged("i0/c00", 50, 5, image="i0c00.png"), candidate("i0c00", None, "P0", 60.0),
              {"type": "step", "key": "i1/rejudge-i0c00/judge_alignment", "meta": {"sim_truth": 50, "sim_image": "i0c00.png",
                                                                                    "sim_expected": 55}}]
    parts = quality_measure.truth_parts(events, quality_measure.final_candidates(events))
    assert parts == {"i0c00": {"alignment": 50.0, "aesthetic": 5.0, "alignment_expected": 55.0}}


def test_selection_noise_is_the_rise_of_the_judges_error() -> None:
    """The error is measured against what a judge without random error gives the image, not the truth: a
    judge's own scale (it saturates, so its totals rise less than the truth's) is not noise."""
    runs = [{"judge_by_iteration": [70, 80], "true_by_iteration": [60, 66], "expected_by_iteration": [75, 78]},
            {"judge_by_iteration": [70, 80], "true_by_iteration": [60, 70], "expected_by_iteration": [70, 80]}]
    noise = quality_stats.selection_noise(runs)
    assert noise["noise_share"] == pytest.approx(7 / 20) and noise["true_rise"] == pytest.approx(8)


def test_paired_intervals() -> None:
    stat = quality_stats.mean_ci([1.0, 2.0, 3.0, 4.0])
    assert stat["mean"] == 2.5 and stat["ci"] == pytest.approx(3.182 * 1.29099 / 2, rel=0.01)
    assert math.isnan(quality_stats.mean_ci([1.0])["ci"])
    assert quality_stats.t_quantile(200) == pytest.approx(1.972, abs=0.002)


async def test_the_blind_critic_sees_no_judge_notes() -> None:
    seen = []

    class Spy:
        async def complete(self, request: TextRequest) -> str:
            seen.append(request)
            return "ok"

    blind = quality.BlindCritic(Spy())
    request = TextRequest(key="i1/p-i0c00/critique", task="critique", system="s", user="Missing: red boat",
                          variables={"idea": "x", "missing": ["red boat"], "weak": ["contrast"], "what": "w", "how": "h",
                                     "alignment_notes": "Missing: red boat", "aesthetic_notes": "Weak: contrast"})
    await blind.complete(request)
    await blind.complete(TextRequest(key="k", task="refine", system="", user="u", variables={"missing": ["kept"]}))
    assert seen[0].variables["missing"] == [] and seen[0].variables["weak"] == []
    assert "red boat" not in str(seen[0].variables) + seen[0].user and seen[0].variables["what"] == "w"
    assert seen[1].variables["missing"] == ["kept"]


def test_a_tiny_benchmark_compares_the_searches_at_an_equal_number_of_images() -> None:
    result = quality.experiment(2, 1, workers=1, common={"sim.image_size": 64})
    assert [(j["group"], j["seed"]) for j in result["jobs"]] == [("known", 0), ("known", 1)]
    for job in result["jobs"]:
        # the searches may make 36 images; a beam that skips repeated prompts pays for fewer (never more)
        images = {name: arm["images"] for name, arm in job["arms"].items()}
        assert images["best-of-36"] == 36 and all(0 < count <= 36 for count in images.values())
        assert len(job["arms"]["beam"]["true_by_iteration"]) == 4 and len(job["arms"]["best-of-36"]["true_by_iteration"]) == 1
        assert job["arms"]["best-of-36"]["pairwise_verdicts"] > 0
    row = result["tables"]["groups"]["all"]
    diffs = [j["arms"]["beam"]["true"] - j["arms"]["best-of-36"]["true"] for j in result["jobs"]]
    assert row["beam"]["mean"] == pytest.approx(sum(diffs) / 2)
    text = quality_stats.render(result)
    assert "| best-of-36 |" in text and "| blind critic |" in text and "selection noise" in text
