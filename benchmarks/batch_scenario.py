"""The batch benchmark (issue 16): many ideas sharing one image rate limit, and what a batch costs in
memory and CPU against a single run.

    python benchmarks/run.py --only batch            # the scenario, about 15 minutes on 2 cores
    python benchmarks/run.py --only batch --quick    # a tiny version (the tests run it)

1. Rate-limited batch: 16 ideas x N=9, M=3, 3 iterations, the simulator's drawn latencies (text 0.2 s,
   image 1.0 s, vision 0.3 s, +-50%), images capped at 120 rpm over a 10 s window (20 starts per 10 s) and
   no other limit. Target: wall <= 1.05 x max(the slowest idea's own critical path, image requests /
   rate), the rpm never exceeded (checked from the start time of every image request the simulators
   received, all ideas together). Also run with other numbers of ideas at once, to show the default's.
2. Overhead: zero latency, pixel work cached away, each measurement in a fresh process: a single run,
   then batches of 4, 16 and 64 ideas run 4 at a time. Peak RSS and CPU per candidate should not grow
   with the number of ideas (a finished idea's session is let go; the limiters' start records are bounded).
"""

from __future__ import annotations

import asyncio
import gc
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import bounds, harness  # noqa: E402

COLORS = ["red", "blue", "green", "yellow", "white", "purple", "orange", "pink"]
THINGS = ["lighthouse", "boat", "sun", "house", "tree", "moon", "rocket", "flower"]
PLACES = ["by the sea", "on a lake", "in a field", "at night", "in the desert", "on a beach", "in a storm", "at dawn"]


def ideas(count: int) -> list[str]:
    return [f"a {COLORS[i % 8]} {THINGS[(i // 8 + i) % 8]} {PLACES[(i * 3) % 8]}" + (f", number {i}" if i >= 64 else "")
            for i in range(count)]


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class TalliedSimulator(harness.RecordingSimulator):
    """The recording simulator, adding its pixel and text CPU to one tally shared by every idea's simulator,
    so that the benchmark does not keep every idea's simulator alive to add them up at the end."""

    def __init__(self, seed: int, sim: Any, tally: dict[str, float], **options: Any) -> None:
        self._tally, self._own = tally, {"work_cpu": 0.0, "text_cpu": 0.0}
        super().__init__(seed, sim, **options)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("work_cpu", "text_cpu"):
            self._tally[name] += value - self._own[name]
            self._own[name] = value
        else:
            super().__setattr__(name, value)

    def __getattr__(self, name: str) -> Any:
        if name in ("work_cpu", "text_cpu"):
            return self._own[name]
        raise AttributeError(name)


def run_one_batch(folder: Path, prompts: list[str], flags: dict[str, Any], concurrency: int | None,
                  cached: bool = False, read_events: bool = True) -> dict[str, Any]:
    """One batch in this process: its wall time, every idea's events (unless `read_events` is False: the
    overhead children measure memory, and would measure the logs they read), the image starts of all ideas."""
    from beamsearch.batch import run_batch
    from beamsearch.batch_open import open_new_batch
    from beamsearch.precedence import resolve

    path = folder / "ideas.txt"
    path.write_text("\n".join(prompts) + "\n")
    settings = resolve(None, {"provider": "sim", "runs_dir": str(folder / "runs"), **flags}, environ={})
    starts: dict[str, list[float]] = {"text": [], "image": [], "vision": []}
    tally = {"work_cpu": 0.0, "text_cpu": 0.0}

    def providers_for(idea_settings: Any) -> Any:
        sim = TalliedSimulator(idea_settings.seed, idea_settings.sim, tally, cached_work=cached)
        sim.starts = starts  # type: ignore[assignment] - every idea's starts on one record
        return sim.providers()

    marks: dict[str, float] = {}

    def listen(event: Any) -> None:
        if event.type in ("batch_started", "batch_finished"):
            marks[event.type] = time.perf_counter()
            marks[event.type + "_cpu"] = time.process_time()

    opened = open_new_batch(path, settings, concurrency)
    begin = time.perf_counter()
    result = asyncio.run(run_batch(opened, [listen], providers_for=providers_for))
    total = time.perf_counter() - begin
    runs = [result.path / row["run"] for row in result.summary["rows"] if row["run"]]
    events = [[json.loads(line) for line in (run / "events.jsonl").read_text().splitlines() if line]
              for run in runs] if read_events else []
    return {"wall": marks["batch_finished"] - marks["batch_started"], "total_wall": total,
            "cpu": marks["batch_finished_cpu"] - marks["batch_started_cpu"], "concurrency": opened.concurrency,
            "status": result.status, "events": events, "starts": starts, "sim_cpu": sum(tally.values()),
            "candidates": len(starts["image"])}  # one image per candidate (no refusals in these ideas)


def rate_limited_batch(profile: Any, quick: bool) -> dict[str, Any]:
    count, (n, m, iterations) = (4, (4, 2, 2)) if quick else (16, (9, 3, 3))
    rpm, window = (600.0, 0.2) if quick else (120.0, 10.0)
    flags = {"n": n, "m": m, "iterations": iterations, "limits.image.rpm": rpm, "limits.image.concurrency": 256,
             "limits.window_s": window, **_latency_flags(profile)}
    runs = []
    for seed in range(profile.repeats):
        runs.append(_rate_run(flags | {"seed": seed}, count, rpm, window, None))
    others = [] if quick else [_rate_run(flags, count, rpm, window, k) for k in (1, 4, 8)]
    keys = [k for k, v in runs[0].items() if isinstance(v, int | float) and not isinstance(v, bool)]
    return {"ideas": count, "n": n, "m": m, "iterations": iterations, "rpm": rpm, "window_s": window, "runs": runs,
            **{k: statistics.median(r[k] for r in runs) for k in keys},
            "limit_respected": all(r["limit_respected"] for r in runs), "other_concurrency": others}


def _latency_flags(profile: Any) -> dict[str, Any]:
    flags: dict[str, Any] = {}
    for service in ("text", "image", "vision"):
        flags[f"sim.latency.{service}.mean"] = getattr(profile, service)
        flags[f"sim.latency.{service}.jitter"] = profile.jitter
    return flags


def _rate_run(flags: dict[str, Any], count: int, rpm: float, window: float, concurrency: int | None) -> dict[str, Any]:
    with harness.scratch() as folder:
        measured = run_one_batch(folder, ideas(count), flags, concurrency)
    paths = [bounds.critical_path_bound(bounds.lane_chains(events)) for events in measured["events"]]
    images = len(measured["starts"]["image"])
    over_rate = bounds.requests_over_rate(images, rpm)
    check = bounds.check_window(measured["starts"]["image"], rpm, window)
    bound = max(max(paths), over_rate)
    window_bound = _window_bound(measured["events"], images, rpm, window)
    run = {"window_bound": window_bound, "ratio_window_bound": measured["wall"] / window_bound,"concurrency": measured["concurrency"], "wall": measured["wall"], "total_wall": measured["total_wall"],
           "images": images, "slowest_critical_path": max(paths), "requests_over_rate": over_rate, "bound": bound,
           "ratio": measured["wall"] / bound, "max_in_period": check.max_in_period, "allowed": check.allowed,
           "period": check.period, "limit_respected": check.within(rpm), "status": measured["status"]}
    _log(f"batch {count} ideas, {measured['concurrency']} at once, seed {flags.get('seed', 0)}: wall {run['wall']:.2f} s, "
         f"bound {bound:.2f} s (slowest idea {max(paths):.2f} s, requests/rate {over_rate:.2f} s), ratio "
         f"{run['ratio']:.4f}, most starts in a period {check.max_in_period} of {check.allowed}, "
         f"limit respected: {run['limit_respected']}")
    return run


def _window_bound(events: list[list[dict[str, Any]]], images: int, rpm: float, window: float) -> float:
    """A true lower bound under the limiter's sliding window, over all ideas together: no image starts
    before the quickest idea's first lane is ready, the last starts (images - 1) // allowed periods after
    the first, and it then takes at least the shortest image-and-judging of any last iteration."""
    allowed, period = bounds.window_scheme(rpm, window)
    per_idea = [bounds.by_iteration(bounds.lane_chains(run)) for run in events]
    head = min(min(c.before_image for c in iterations[0]) for iterations in per_idea)
    tail = min(min(c.image_and_after for c in iterations[-1]) for iterations in per_idea)
    return head + (images - 1) // allowed * period + tail


# --- overhead, each measurement in a fresh process --------------------------------------------------


def overhead_child(count: int, concurrency: int, shape: tuple[int, int, int]) -> dict[str, Any]:
    """count 0: a single run (app.start_run); else a batch of `count` ideas, `concurrency` at a time."""
    n, m, iterations = shape
    flags = {"n": n, "m": m, "iterations": iterations, "sim.latency.text.mean": 0, "sim.latency.image.mean": 0,
             "sim.latency.vision.mean": 0}
    gc.collect()
    with harness.scratch() as folder:
        if count == 0:
            settings = harness.settings_for(folder, n=n, m=m, iterations=iterations, text=0.0, image=0.0, vision=0.0,
                                            jitter=0.0)
            sim = harness.RecordingSimulator(settings.seed, settings.sim, cached_work=True)
            measured = harness.run_search(settings, simulator=sim)
            cpu, candidates, sim_cpu = measured.cpu, measured.candidates, sim.work_cpu + sim.text_cpu  # all included
        else:
            batch = run_one_batch(folder, ideas(count), flags, concurrency, cached=True, read_events=False)
            cpu, candidates, sim_cpu = batch["cpu"], batch["candidates"], batch["sim_cpu"]
    return {"ideas": count, "concurrency": concurrency, "candidates": candidates,
            "cpu_per_candidate_ms": 1000 * (cpu - sim_cpu) / candidates, "max_rss_mb": peak_rss_mb()}


def peak_rss_mb() -> float:
    """This process's own peak RSS: /proc's VmHWM. (Linux's ru_maxrss keeps, across fork and exec, the
    parent's size at the fork, so a child started by a 67 MB benchmark never reports less than 67 MB.)"""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def overhead(profile: Any, quick: bool) -> list[dict[str, Any]]:
    shape = (4, 2, 2) if quick else (9, 3, 3)
    counts = [0, 2, 4] if quick else [0, 4, 16, 64, 256]
    rows = []
    for count in counts:
        runs = []
        for _ in range(1 if quick else max(1, min(profile.repeats, 3))):
            spec = f"{count},4,{shape[0]},{shape[1]},{shape[2]}"
            output = subprocess.run([sys.executable, __file__, "--child", spec], capture_output=True, text=True,
                                    check=True)
            runs.append(json.loads(output.stdout))
        row = {"ideas": count, "runs": runs, **{k: statistics.median(r[k] for r in runs)
                                                for k in ("candidates", "cpu_per_candidate_ms", "max_rss_mb")}}
        _log(f"batch overhead {'single run' if count == 0 else f'{count} ideas, 4 at once'}: "
             f"{row['cpu_per_candidate_ms']:.2f} ms CPU per candidate, peak RSS {row['max_rss_mb']:.0f} MB")
        rows.append(row)
    return rows


def scenario(profile: Any) -> dict[str, Any]:
    quick = bool(getattr(profile, "smoke", False))
    return {"rate_limited": rate_limited_batch(profile, quick), "overhead": overhead(profile, quick)}


def report_lines(batch: dict[str, Any]) -> list[str]:
    r = batch["rate_limited"]
    lines = [f"Batch: {r['ideas']} ideas x N={r['n']}, M={r['m']}, {r['iterations']} iterations, images {r['rpm']:g} rpm "
             f"over {r['window_s']:g} s ({r['runs'][0]['allowed']} per {r['runs'][0]['period']:.2f} s).", "",
             "| ideas at once | images | wall (s) | slowest idea's critical path (s) | requests / rate (s) | wall / bound | "
             "window bound (s) | wall / window bound | most starts in a period | limit respected |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in [*r["runs"], *r["other_concurrency"]]:
        lines.append(f"| {row['concurrency']} | {row['images']} | {row['wall']:.2f} | {row['slowest_critical_path']:.2f} | "
                     f"{row['requests_over_rate']:.2f} | {row['ratio']:.3f} | {row['window_bound']:.2f} | "
                     f"{row['ratio_window_bound']:.3f} | {row['max_in_period']} | "
                     f"{'yes' if row['limit_respected'] else 'NO'} |")
    lines += ["", "| batch (4 at once) | candidates | CPU per candidate (ms) | peak RSS (MB) |", "|---|---|---|---|"]
    for row in batch["overhead"]:
        name = "single run" if row["ideas"] == 0 else f"{row['ideas']} ideas"
        lines.append(f"| {name} | {row['candidates']:.0f} | {row['cpu_per_candidate_ms']:.2f} | {row['max_rss_mb']:.0f} |")
    return [*lines, ""]


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "--child":
    count, concurrency, n, m, iterations = (int(x) for x in sys.argv[2].split(","))
    print(json.dumps(overhead_child(count, concurrency, (n, m, iterations))))
