"""Beam search genuinely helps in the simulator, judged by the simulator's hidden truth."""

from __future__ import annotations

import statistics

from simhelp import read_events, sim_settings

from beamsearch.app import start_run

SEEDS = range(10)


def true_total(events: list[dict], candidate_id: str, alpha: float = 0.7) -> float:
    k, lane = candidate_id[1:].split("c", 1)
    truth = {e["key"].rsplit("_", 1)[-1]: e["meta"]["sim_truth"] for e in events
             if e["type"] == "step" and e["key"].startswith(f"i{k}/c{lane}/judge_")}
    return alpha * truth["alignment"] + (1 - alpha) * truth["aesthetic"] * 10


async def test_beam_search_improves_and_beats_random_sampling(tmp_path) -> None:
    first, last, beam, sampled = [], [], [], []
    for seed in SEEDS:
        result = await start_run(sim_settings(tmp_path, n=6, m=2, iterations=4, seed=seed))
        iterations = result.summary["iterations"]
        first.append(max(c["total"] for c in result.summary["candidates"] if c["iteration"] == 0))
        last.append(iterations[-1]["best_total"])
        beam.append(true_total(read_events(result.store.path), result.summary["best"]["id"]))
        # best-of-N random sampling with the same number of images: 24 independent expansions
        baseline = await start_run(sim_settings(tmp_path, n=24, m=1, iterations=1, seed=seed))
        sampled.append(true_total(read_events(baseline.store.path), baseline.summary["best"]["id"]))
    assert statistics.mean(last) > statistics.mean(first)
    assert statistics.mean(beam) > statistics.mean(sampled)
    print(f"iteration-0 best {statistics.mean(first):.1f} -> last {statistics.mean(last):.1f}; "
          f"true quality beam {statistics.mean(beam):.1f} vs best-of-24 {statistics.mean(sampled):.1f}")
