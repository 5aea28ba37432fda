"""The orchestration benchmark (issue 6, DESIGN.md section 8): one command, a table of results.

    python benchmarks/run.py            # the full suite, about 10 minutes on 2 cores
    python benchmarks/run.py --quick    # a tiny version of every scenario, seconds (used by the tests)
    python benchmarks/run.py --only efficiency,startup --repeats 5 --json results.json
    python benchmarks/run.py --only real_path,default_limits --json benchmarks/results/real-path.json

The first five scenarios run the real engine, gate, limiter, steps and run folder in this process against
the simulator with drawn latencies (text 0.2 s, image 1.0 s, vision 0.3 s, +-50% by default). Wall times
are compared with lower bounds computed from the latencies the simulator actually drew (see `bounds`).
`real_path`, `real_path_unshrunk` and `default_limits` run the `beamsearch run` CLI as a separate process
over HTTP to a loopback OpenAI-compatible server (see `real_path` and `loopback_server`), with the same
latencies drawn by the server; `--cli A,B` runs them for several checkouts, seed by seed in turn.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import batch_scenario, bounds, harness, real_path, sdk_overhead  # noqa: E402


@dataclass
class Profile:
    """Sizes and latencies of the suite; `--quick` shrinks everything so the suite runs in seconds."""

    text: float = 0.2
    image: float = 1.0
    vision: float = 0.3
    jitter: float = 0.5
    repeats: int = 3
    shapes: list[tuple[int, int, int]] = field(default_factory=lambda: [(9, 3, 4), (64, 8, 4), (256, 16, 4)])
    staged_shape: tuple[int, int, int] = (64, 8, 4)
    rate_shape: tuple[int, int, int] = (9, 3, 4)
    rate_cases: list[tuple[float, float]] = field(default_factory=lambda: [(60.0, 10.0), (120.0, 0.5)])  # (rpm, window_s)
    overhead_shape: tuple[int, int, int] = (256, 16, 4)
    overhead_size: int = 1024
    startup_runs: int = 7
    real_shape: tuple[int, int, int] = (9, 3, 3)  # the real path: the CLI over loopback HTTP
    real_side: int = 1024  # photo-weight PNGs of this side (about 1.5 MB at 1024 px)
    default_image: float = 4.0  # image latency of the default-limits case
    cli: str | None = None  # the beamsearch executable the real path runs (default: the one beside Python)
    smoke: bool = False  # set by quick(): scenarios kept in their own modules shrink too

    @classmethod
    def quick(cls) -> Profile:
        return cls(text=0.01, image=0.05, vision=0.02, repeats=1, shapes=[(4, 2, 2)], staged_shape=(4, 2, 2),
                   rate_shape=(4, 2, 2), rate_cases=[(600.0, 0.2)], overhead_shape=(4, 2, 2), overhead_size=64,
                   startup_runs=1, real_shape=(2, 1, 2), real_side=256, default_image=0.2,
                   smoke=True)

    def latencies(self) -> dict[str, float]:
        return {"text": self.text, "image": self.image, "vision": self.vision, "jitter": self.jitter}


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- 1. efficiency -----------------------------------------------------------------------------------


def efficiency(profile: Profile) -> list[dict[str, Any]]:
    """Wall time against the critical-path bound, with the simulator's painting and measuring as they
    are (the `extra` bound adds each call's time beyond its drawn latency) and with them cached away."""
    rows = []
    for n, m, iterations in profile.shapes:
        for work in ("real", "cached") if n >= 256 or profile.repeats == 1 and n < 9 else ("real",):
            runs = []
            for seed in range(profile.repeats):
                with harness.scratch() as folder:
                    settings = harness.settings_for(folder, n=n, m=m, iterations=iterations, seed=seed,
                                                    **profile.latencies())
                    sim = harness.RecordingSimulator(settings.seed, settings.sim, cached_work=work == "cached")
                    measured = harness.run_search(settings, simulator=sim)
                chains = bounds.lane_chains(measured.events)
                bound = bounds.critical_path_bound(chains)
                with_sim = bounds.critical_path_bound(bounds.lane_chains(measured.events, sim.extra))
                runs.append({"wall": measured.wall, "bound": bound, "bound_with_sim_time": with_sim,
                             "ratio": measured.wall / bound, "ratio_with_sim_time": measured.wall / with_sim,
                             "cpu": measured.cpu, "sim_cpu": sim.work_cpu, "candidates": measured.candidates,
                             "lanes": measured.extras["lanes"]})
                log(f"efficiency N={n} sim work {work} seed {seed}: wall {measured.wall:.3f} s, bound {bound:.3f} s, "
                    f"ratio {measured.wall / bound:.4f}")
            rows.append({"n": n, "m": m, "iterations": iterations, "sim_work": work, "runs": runs,
                         **{k: median([r[k] for r in runs]) for k in runs[0]}})
    return rows


# --- 2. rate-limited ---------------------------------------------------------------------------------


def rate_limited(profile: Profile) -> list[dict[str, Any]]:
    """Images capped at `rpm` (sliding window `window_s`), far below what the lanes could use."""
    rows = []
    n, m, iterations = profile.rate_shape
    for rpm, window in profile.rate_cases:
        runs = []
        for seed in range(profile.repeats):
            with harness.scratch() as folder:
                settings = harness.settings_for(folder, n=n, m=m, iterations=iterations, seed=seed,
                                                **profile.latencies(),
                                                extra={"limits.image.rpm": rpm, "limits.image.concurrency": 256,
                                                       "limits.window_s": window})
                measured = harness.run_search(settings)
            starts = measured.simulator.starts["image"]
            chains = bounds.lane_chains(measured.events)
            check = bounds.check_window(starts, rpm, window)
            run = {
                "allowed": check.allowed, "period": check.period, "images": len(starts), "wall": measured.wall,
                "requests_over_rate": bounds.requests_over_rate(len(starts), rpm),
                "rate_bound": bounds.rate_limited_bound(chains, rpm, window),
                "first_come_schedule": bounds.first_come_schedule(chains, rpm, window),
                "critical_path": bounds.critical_path_bound(chains),
                "max_in_period": check.max_in_period, "max_in_minute": check.max_in_minute,
                "min_gap_allowed_apart": check.min_gap_allowed_apart, "limit_respected": check.within(rpm),
            }
            run["ratio_rate_bound"] = run["wall"] / run["rate_bound"]
            run["ratio_requests_over_rate"] = run["wall"] / run["requests_over_rate"]
            run["ratio_first_come"] = run["wall"] / run["first_come_schedule"]
            log(f"rate-limited rpm {rpm} window {window} seed {seed}: wall {run['wall']:.3f} s, bound "
                f"{run['rate_bound']:.3f} s, first-come ideal {run['first_come_schedule']:.3f} s, requests/rate "
                f"{run['requests_over_rate']:.3f} s, limit respected: {run['limit_respected']}")
            runs.append(run)
        numeric = [k for k, v in runs[0].items() if isinstance(v, int | float) and not isinstance(v, bool)
                   and k not in ("max_in_period", "max_in_minute", "min_gap_allowed_apart")]
        gaps = [r["min_gap_allowed_apart"] for r in runs if r["min_gap_allowed_apart"] is not None]
        rows.append({"n": n, "m": m, "iterations": iterations, "rpm": rpm, "window_s": window, "runs": runs,
                     **{k: median([r[k] for r in runs]) for k in numeric},
                     "max_in_period": max(r["max_in_period"] for r in runs),
                     "max_in_minute": max(r["max_in_minute"] for r in runs),
                     "min_gap_allowed_apart": min(gaps) if gaps else None,
                     "limit_respected": all(r["limit_respected"] for r in runs)})
    return rows


# --- 3. streaming against stage-by-stage -------------------------------------------------------------


def streaming_vs_staged(profile: Profile) -> dict[str, Any]:
    n, m, iterations = profile.staged_shape
    runs = []
    for seed in range(profile.repeats):
        walls = {}
        for staged in (False, True):
            with harness.scratch() as folder:
                # the stage barriers wait for every lane at every stage: no lane skipped as a repeat, no extra judging
                settings = harness.settings_for(folder, n=n, m=m, iterations=iterations, seed=seed,
                                                extra={"variants": None, "rejudge": False}, **profile.latencies())
                measured = harness.run_search(settings, staged=staged)
            walls["staged" if staged else "streaming"] = measured.wall
            if not staged:
                walls["bound"] = bounds.critical_path_bound(bounds.lane_chains(measured.events))
        walls["ratio"] = walls["staged"] / walls["streaming"]
        log(f"stage-by-stage N={n} seed {seed}: streaming {walls['streaming']:.3f} s, staged {walls['staged']:.3f} s, "
            f"ratio {walls['ratio']:.3f}")
        runs.append(walls)
    return {"n": n, "m": m, "iterations": iterations, "runs": runs, **{k: median([r[k] for r in runs]) for k in runs[0]}}


# --- 4. overhead -------------------------------------------------------------------------------------


def overhead_child(n: int, m: int, iterations: int, size: int, photo: bool) -> dict[str, Any]:
    """Runs in its own process (so ru_maxrss is this run's): zero latency, the simulator's painting and
    measuring replaced by a cached 1024 px PNG (grained to weigh what a real one does) and a cached
    measurement, so what is left is beamsearch. Memory: were images held, the peak would grow by each
    image's weight times the number of candidates; it is compared with the megabytes written."""

    def one(trace: bool) -> dict[str, Any]:
        with harness.scratch() as folder:
            settings = harness.settings_for(folder, n=n, m=m, iterations=iterations, text=0.0, image=0.0,
                                            vision=0.0, jitter=0.0, image_size=size)
            sim = harness.RecordingSimulator(settings.seed, settings.sim, cached_work=True, photo_like=photo)
            gc.collect()
            if trace:
                tracemalloc.start()
            kernel = resource.getrusage(resource.RUSAGE_SELF).ru_stime
            measured = harness.run_search(settings, simulator=sim)
            kernel = resource.getrusage(resource.RUSAGE_SELF).ru_stime - kernel
            peak = tracemalloc.get_traced_memory()[1] if trace else None
            if trace:
                tracemalloc.stop()
            image_bytes = sum(p.stat().st_size for p in (measured.extras["run_dir"] / "images").iterdir())
        beamsearch_cpu = measured.search_cpu - sim.work_cpu - sim.text_cpu
        return {"candidates": measured.candidates, "lanes": measured.extras["lanes"], "wall": measured.wall, "search_cpu": measured.search_cpu,
                "total_cpu": measured.cpu, "sim_cpu": sim.work_cpu + sim.text_cpu,
                "cpu_per_candidate_ms": 1000 * beamsearch_cpu / measured.candidates,
                "total_cpu_per_candidate_ms": 1000 * (measured.cpu - sim.work_cpu - sim.text_cpu) / measured.candidates,
                "kernel_cpu_per_candidate_ms": 1000 * kernel / measured.candidates,
                "traced_peak_mb": peak / 2**20 if peak is not None else None, "image_mb_written": image_bytes / 2**20,
                "image_kb_each": image_bytes / 1024 / max(1, measured.candidates)}

    plain = one(trace=False)
    plain["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    traced = one(trace=True)
    plain["traced_peak_mb"] = traced["traced_peak_mb"]
    return plain


def overhead(profile: Profile) -> list[dict[str, Any]]:
    """Each image weight (photo-like, ~1.5 MB at 1024 px; flat, the simulator's own ~20 KB) in fresh
    processes, a few times; medians."""
    n, m, iterations = profile.overhead_shape
    rows = []
    for weight in ("photo-like", "flat"):
        runs = []
        for _ in range(max(1, min(profile.repeats, 3))):
            spec = f"{n},{m},{iterations},{profile.overhead_size},{int(weight == 'photo-like')}"
            output = subprocess.run([sys.executable, __file__, "--overhead-child", spec],
                                    capture_output=True, text=True, check=True)
            runs.append(json.loads(output.stdout))
            log(f"overhead N={n} {profile.overhead_size}px {weight}: {runs[-1]['cpu_per_candidate_ms']:.2f} ms CPU "
                f"per candidate ({runs[-1]['kernel_cpu_per_candidate_ms']:.2f} in the kernel), RSS "
                f"{runs[-1]['max_rss_mb']:.0f} MB, traced peak {runs[-1]['traced_peak_mb']:.1f} MB, "
                f"{runs[-1]['image_mb_written']:.0f} MB of images")
        numeric = [k for k, v in runs[0].items() if isinstance(v, int | float)]
        rows.append({"n": n, "m": m, "iterations": iterations, "image_size": profile.overhead_size, "weight": weight,
                     "runs": runs, **{k: median([r[k] for r in runs]) for k in numeric}})
    return rows


# --- 5. start-up -------------------------------------------------------------------------------------


def startup(profile: Profile) -> dict[str, Any]:
    exe = profile.cli or shutil.which("beamsearch", path=str(Path(sys.executable).parent)) or shutil.which("beamsearch")
    command = [exe, "--help"] if exe else [sys.executable, "-m", "beamsearch", "--help"]

    def timed(argv: list[str]) -> float:
        begin = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True)
        return time.perf_counter() - begin

    timed(command)  # warm the file cache
    help_times = [timed(command) for _ in range(profile.startup_runs)]
    bare = [timed([sys.executable, "-c", "pass"]) for _ in range(profile.startup_runs)]
    result = {"command": " ".join(Path(a).name if i == 0 else a for i, a in enumerate(command)),
              "median": median(help_times), "runs": help_times, "python_alone": median(bare)}
    log(f"start-up: {result['command']} {result['median']:.3f} s (python alone {result['python_alone']:.3f} s)")
    return result


# --- 6. the real path: the CLI over loopback HTTP ------------------------------------------------


def unshrunk_scenario(profile: Profile) -> dict[str, Any]:
    return real_path.real_path_unshrunk(profile)


def real_path_scenario(profile: Profile) -> dict[str, Any]:
    result = real_path.real_path(profile)
    for row in result.get("compare", [result]):
        row["help"] = startup(dataclasses.replace(profile, cli=row["cli"]))
    return result


# --- the report --------------------------------------------------------------------------------------


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {model}, Python {platform.python_version()}, {platform.system()} {platform.release()}"


def report(results: dict[str, Any]) -> str:
    lines = [f"Machine: {results['machine']}; date: {results['date']}; repeats: {results['repeats']} "
             f"(medians); latencies text {results['latencies']['text']} s, image {results['latencies']['image']} s, "
             f"vision {results['latencies']['vision']} s, jitter +-{results['latencies']['jitter']:.0%}.", ""]
    if "efficiency" in results:
        lines += ["| N / M / iterations | simulator work | wall (s) | bound (s) | wall / bound | bound incl. sim time (s) | wall / that | CPU (s) |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in results["efficiency"]:
            lines.append(f"| {r['n']} / {r['m']} / {r['iterations']} | {r['sim_work']} | {r['wall']:.2f} | {r['bound']:.2f} | "
                         f"{r['ratio']:.3f} | {r['bound_with_sim_time']:.2f} | {r['ratio_with_sim_time']:.3f} | {r['cpu']:.1f} |")
        lines.append("")
    if "rate_limited" in results:
        lines += ["| images rpm / window | allowed per period | images | wall (s) | requests / rate (s) | window bound (s) | first-come ideal (s) | wall / bound | wall / first-come | most starts in a period (any run) | limit respected (every run) |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in results["rate_limited"]:
            lines.append(f"| {r['rpm']:g} / {r['window_s']:g} s | {r['allowed']} per {r['period']:.2f} s | {r['images']} | {r['wall']:.2f} | "
                         f"{r['requests_over_rate']:.2f} | {r['rate_bound']:.2f} | {r['first_come_schedule']:.2f} | "
                         f"{r['ratio_rate_bound']:.3f} | {r['ratio_first_come']:.3f} | {r['max_in_period']} | {'yes' if r['limit_respected'] else 'NO'} |")
        lines.append("")
    if "staged" in results:
        s = results["staged"]
        lines += [f"Streaming against stage-by-stage (N={s['n']}, M={s['m']}, {s['iterations']} iterations): streaming "
                  f"{s['streaming']:.2f} s, stage-by-stage {s['staged']:.2f} s, ratio {s['ratio']:.3f} "
                  f"(bound {s['bound']:.2f} s).", ""]
    if "overhead" in results:
        lines += ["| N / M / iterations | image | images written | CPU per candidate, search (ms) | of it in the kernel (ms) | "
                  "incl. run folder and derived files (ms) | peak RSS (MB) | traced Python peak (MB) |",
                  "|---|---|---|---|---|---|---|---|"]
        for o in results["overhead"]:
            lines.append(f"| {o['n']} / {o['m']} / {o['iterations']} | {o['image_size']} px {o['weight']}, "
                         f"{o['image_kb_each']:.0f} KB | {o['candidates']:.0f}, {o['image_mb_written']:.0f} MB | "
                         f"{o['cpu_per_candidate_ms']:.2f} | {o['kernel_cpu_per_candidate_ms']:.2f} | "
                         f"{o['total_cpu_per_candidate_ms']:.2f} | {o['max_rss_mb']:.0f} | {o['traced_peak_mb']:.1f} |")
        lines.append("")
    if "startup" in results:
        s = results["startup"]
        lines += [f"Start-up: `{s['command']}` {s['median']:.3f} s median of {len(s['runs'])} "
                  f"(`python -c pass` alone: {s['python_alone']:.3f} s).", ""]
    if "batch" in results:
        lines += batch_scenario.report_lines(results["batch"])
    return "\n".join(lines + real_path_report(results))


def real_path_report(results: dict[str, Any]) -> list[str]:
    lines = []
    rows = [(name, row) for name in ("real_path", "real_path_unshrunk", "default_limits") if name in results
            for row in results[name].get("compare", [results[name]])]
    several = len({row["cli"] for _, row in rows}) > 1
    if rows:
        lines += ["| CLI over loopback HTTP | N / M / it. | image | wall (s) | bound (s) | wall / bound | span / bound | "
                  "start-up (s) | tail (s) | CPU per candidate, whole process / in the span (ms) | image to judge, median / max (s) |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for name, r in rows:
            who = f" `{r['cli']}`" if several else ""
            lines.append(f"| {name}{who} (image {r['latency']['image']:g} s) | {r['n']} / {r['m']} / {r['iterations']} | "
                         f"{r['image_side']} px, {r['image_bytes'] / 2**20:.2f} MB | {r['wall']:.2f} | {r['bound']:.2f} | "
                         f"{r['ratio']:.3f} | {r['span_ratio']:.3f} | {r['startup']:.2f} | {r['tail']:.2f} | "
                         f"{r['cpu_per_candidate_ms']:.1f} / {r['in_run_cpu_per_candidate_ms']:.1f} | "
                         f"{r['image_to_judge_median']:.2f} / {r['image_to_judge_max']:.2f} |")
        lines.append("")
    if "sdk_overhead" in results:
        o = results["sdk_overhead"]["ms_cpu_per_request"]
        lines += ["| CPU per request (ms), loopback, zero latency | text | vision (768 px PNG sent) | image (1024 px PNG received) |",
                  "|---|---|---|---|"]
        for name in ("typed", "provider", "bare"):
            lines.append(f"| {name} | {o[name]['text']:.2f} | {o[name]['vision']:.2f} | {o[name]['image']:.2f} |")
        lines.append("")
    for name, d in rows:
        if name == "default_limits":
            who = f" (`{d['cli']}`)" if several else ""
            lines += [f"Default limits{who}: image concurrency {d['image_concurrency']}, {d['image_rpm']} rpm enforced "
                      f"over {d['window_s']:g} s; most image requests in any such window {d['max_in_window']}, in any "
                      f"minute {d['max_in_minute']}; configured limit respected in every run: "
                      f"{'yes' if d['rate_respected'] else 'NO'}; wall / max(bound, the minute budget's bound) "
                      f"{d['ratio_with_rate']:.3f}.", ""]
        elif "help" in d:
            lines += [f"`{d['help']['command']}`{' (' + d['cli'] + ')' if several else ''}: {d['help']['median']:.3f} s.", ""]
    return lines


SCENARIOS = {"efficiency": efficiency, "rate_limited": rate_limited, "staged": streaming_vs_staged,
             "overhead": overhead, "startup": startup, "real_path": real_path_scenario,
             "real_path_unshrunk": unshrunk_scenario, "default_limits": real_path.default_limits,
             "sdk_overhead": sdk_overhead.sdk_overhead, "batch": batch_scenario.scenario}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description="beamsearch orchestration benchmark")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and latencies: a smoke run in seconds")
    parser.add_argument("--only", help=f"comma-separated scenarios among {', '.join(SCENARIOS)}")
    parser.add_argument("--repeats", type=int, help="runs per measurement (medians are reported)")
    parser.add_argument("--text", type=float, help="mean text latency, seconds")
    parser.add_argument("--image", type=float, help="mean image latency, seconds")
    parser.add_argument("--vision", type=float, help="mean vision latency, seconds")
    parser.add_argument("--jitter", type=float, help="latency jitter as a fraction of the mean (0.5 = +-50%%)")
    parser.add_argument("--shapes", help="efficiency shapes as N/M/iterations, comma-separated (default 9/3/4,64/8/4,256/16/4)")
    parser.add_argument("--cli", help="real_path, default_limits: the beamsearch executable to run (e.g. another "
                        "checkout's .venv/bin/beamsearch, to measure it with this benchmark)")
    parser.add_argument("--json", type=Path, help="also write every number to this JSON file")
    parser.add_argument("--overhead-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.overhead_child:
        n, m, iterations, size, photo = (int(x) for x in args.overhead_child.split(","))
        print(json.dumps(overhead_child(n, m, iterations, size, bool(photo))))
        return {}
    profile = Profile.quick() if args.quick else Profile()
    for name in ("repeats", "text", "image", "vision", "jitter", "cli"):
        if getattr(args, name) is not None:
            setattr(profile, name, getattr(args, name))
    if args.shapes:
        profile.shapes = [tuple(int(x) for x in shape.split("/")) for shape in args.shapes.split(",")]  # type: ignore[misc]
    chosen = args.only.split(",") if args.only else list(SCENARIOS)
    unknown = [c for c in chosen if c not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {unknown[0]!r}; choose among {', '.join(SCENARIOS)}")
    results: dict[str, Any] = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "repeats": profile.repeats,
                               "latencies": profile.latencies(), "quick": args.quick}
    for name in chosen:
        results[name] = SCENARIOS[name](profile)
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return results


if __name__ == "__main__":
    main()
