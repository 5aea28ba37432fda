"""The path a user takes: the `beamsearch run` CLI as a whole process, over HTTP to a loopback
OpenAI-compatible server (`loopback_server`, in a process of its own), with photo-weight images.

Times come from two clocks that compare (`time.monotonic()` is system-wide on Linux): this process notes
when it starts the CLI and when the CLI exits; the server notes when each request arrives and when its
answer was sent, and the latency it applied. The server's log is joined to the run's events.jsonl (each
answer carries its request's token, each image its own digest), so every step gets the latency the
server applied, and `bounds` computes the critical path from those exactly as it does for the simulator.

What is reported, per run:
* wall: CLI start to exit; bound: the critical path of the applied latencies; wall / bound;
* span: first request's arrival to last answer sent (the server's clock); span / bound;
* start-up: CLI start to the first request; tail: last answer sent to exit;
* CPU per candidate: the CLI's own user + system CPU (its rusage at exit) over candidates, and the part
  spent during the span (sampled from /proc while it runs);
* for the default-limits case, whether image requests ever came faster than the configured rpm allows,
  counted from the server's arrival times over the limiter's window and over any minute.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from benchmarks import bounds
from benchmarks.bounds import read_events

IDEA = "a red lighthouse, a yellow sun, a white boat and a green tree by the sea at night"
SERVER = Path(__file__).with_name("loopback_server.py")
TOKEN = re.compile(r"#r(\d+)")
FAKE_KEY = "loopback-benchmark-not-a-key"


class LoopbackServer:
    """The benchmark server in its own process: started once (its images take a few seconds to make),
    reset before every run."""

    def __init__(self, side: int, pool: int = 4) -> None:
        self.process = subprocess.Popen([sys.executable, str(SERVER), "--side", str(side), "--pool", str(pool)],
                                        stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        words = self.process.stdout.readline().split()
        if len(words) < 4 or words[0] != "PORT":
            self.process.kill()
            raise RuntimeError("the loopback server did not start")
        self.port, self.image_bytes = int(words[1]), int(words[3])
        self.url = f"http://127.0.0.1:{self.port}/v1"

    def _call(self, path: str, data: dict[str, Any] | None = None) -> Any:
        body = json.dumps(data).encode() if data is not None else None
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=body,
                                         method="POST" if body is not None else "GET")
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.loads(answer.read())

    def reset(self, latency: dict[str, float], jitter: float, seed: int) -> None:
        self._call("/_control/reset", {"latency": latency, "jitter": jitter, "seed": seed})

    def log(self) -> list[dict[str, Any]]:
        return list(self._call("/_control/log"))

    def close(self) -> None:
        try:
            self._call("/_control/quit", {})
            self.process.wait(timeout=10)
        except Exception:
            self.process.kill()
            self.process.wait()


@contextmanager
def loopback_server(side: int) -> Any:
    server = LoopbackServer(side)
    try:
        yield server
    finally:
        server.close()


@dataclass
class Child:
    """One CLI process as seen from outside."""

    started: float
    exited: float
    returncode: int
    cpu: float  # user + system seconds, from its rusage
    samples: list[tuple[float, float]]  # (monotonic time, CPU seconds so far), from /proc while it ran
    run_dir: Path

    def cpu_at(self, moment: float) -> float:
        """CPU used by `moment`, interpolated between /proc samples (0 before the first)."""
        points = [(self.started, 0.0), *self.samples, (self.exited, self.cpu)]
        for (t0, c0), (t1, c1) in zip(points, points[1:], strict=False):
            if t0 <= moment <= t1:
                return c0 if t1 == t0 else c0 + (c1 - c0) * (moment - t0) / (t1 - t0)
        return self.cpu if moment > self.exited else 0.0


def _proc_cpu(pid: int, tick: float) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) * tick  # utime, stime (fields 14, 15 of the whole line)


def beamsearch_command(chosen: str | None = None) -> str:
    """The `beamsearch` executable: `chosen` (another checkout's, to measure it with this benchmark), else
    the one installed next to this Python."""
    found = chosen or shutil.which("beamsearch", path=str(Path(sys.executable).parent)) or shutil.which("beamsearch")
    if not found:
        raise RuntimeError("the beamsearch command is not installed next to this Python")
    return found


_COMPILED: set[str] = set()


def compile_package(cli: str) -> None:
    """Byte-compile the package behind `cli` once, as `pip install .` does at install time: an editable
    install (or PYTHONDONTWRITEBYTECODE in the environment, which the children inherit) would otherwise
    compile every module from source at each start, and a checkout with more modules would look slower
    to start for a reason no installed user sees."""
    if cli in _COMPILED:
        return
    python = Path(cli).with_name("python")
    where = subprocess.run([str(python), "-I", "-c", "import beamsearch, os; print(os.path.dirname(beamsearch.__file__))"],
                           capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run([str(python), "-m", "compileall", "-q", where], check=True, capture_output=True)
    _COMPILED.add(cli)


def run_cli(folder: Path, config: dict[str, Any], n: int, m: int, iterations: int, seed: int,
            cli: str | None = None) -> Child:
    """Start `beamsearch run` with a config file, wait for it, sample its CPU while it runs."""
    compile_package(beamsearch_command(cli))
    config_file = folder / "bench.yaml"
    config_file.write_text(yaml.safe_dump(config))
    runs = folder / "runs"
    argv = [beamsearch_command(cli), "run", "--config", str(config_file), "--provider", "openai", "--prompt", IDEA,
            "-n", str(n), "-m", str(m), "--iterations", str(iterations), "--runs-dir", str(runs), "--seed", str(seed)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("BEAMSEARCH_")}
    env.update({"OPENAI_API_KEY": FAKE_KEY, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"})
    tick = 1.0 / os.sysconf("SC_CLK_TCK")
    with open(folder / "stdout.txt", "wb") as out, open(folder / "stderr.txt", "wb") as err:
        started = time.monotonic()
        process = subprocess.Popen(argv, stdout=out, stderr=err, env=env)
        ended: dict[str, Any] = {}

        def reap() -> None:
            _, status, usage = os.wait4(process.pid, 0)
            ended.update(at=time.monotonic(), status=status, usage=usage)

        reaper = threading.Thread(target=reap)
        reaper.start()
        samples = []
        while reaper.is_alive():
            cpu = _proc_cpu(process.pid, tick)
            if cpu is not None and reaper.is_alive():
                samples.append((time.monotonic(), cpu))
            time.sleep(0.01)
        reaper.join()
    process.returncode = os.waitstatus_to_exitcode(ended["status"])
    usage = ended["usage"]
    folders = [p for p in runs.iterdir() if p.is_dir()] if runs.is_dir() else []
    if process.returncode != 0 or len(folders) != 1:
        raise RuntimeError(f"beamsearch run failed ({process.returncode}): "
                           f"{(folder / 'stderr.txt').read_text()[-800:]}")
    return Child(started, ended["at"], process.returncode, usage.ru_utime + usage.ru_stime, samples, folders[0])



def join(events: list[dict[str, Any]], log: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]], int]:
    """The events with each step's `meta.latency` set to what the server applied to the request that
    answered it; step key -> that request's log entry; and the number of steps no request matched."""
    by_token = {entry["token"]: entry for entry in log}
    by_digest = {entry["digest"]: entry for entry in log if "digest" in entry}
    joined, requests, unmatched = [], {}, 0
    for event in events:
        if event.get("type") != "step":
            joined.append(event)
            continue
        result = event.get("result") or {}
        entry = by_digest.get(result.get("sha256", "")) if event.get("service") == "image" else None
        if entry is None:
            tokens = TOKEN.findall(json.dumps(result))
            entry = by_token.get(f"#r{tokens[-1]}") if tokens else None
        if entry is None:
            unmatched += 1
            joined.append(event)
            continue
        requests[event["key"]] = entry
        joined.append({**event, "meta": {**(event.get("meta") or {}), "latency": entry["latency"]}})
    return joined, requests, unmatched


def image_to_judge_gaps(requests: dict[str, dict[str, Any]]) -> list[float]:
    """Per lane: from its image's answer leaving the server to its first judge's request arriving."""
    gaps = []
    for key, entry in requests.items():
        head, lane, task = key.split("/", 2)
        if task != "image":
            continue
        judges = [e["arrive"] for k, e in requests.items() if k.startswith(f"{head}/{lane}/judge")]
        if judges:
            gaps.append(min(judges) - entry["sent"])
    return gaps


def measure(server: LoopbackServer, folder: Path, config: dict[str, Any], shape: tuple[int, int, int], seed: int,
            latency: dict[str, float], jitter: float, cli: str | None = None) -> dict[str, Any]:
    """One CLI run against the server, and every figure taken from it."""
    server.reset(latency, jitter, seed)
    n, m, iterations = shape
    load_before = os.getloadavg()[0]
    child = run_cli(folder, config, n, m, iterations, seed, cli)
    log = server.log()
    events = read_events(child.run_dir)
    joined, requests, unmatched = join(events, log)
    chains = bounds.lane_chains(joined)
    bound = bounds.critical_path_bound(chains)
    first, last = min(e["arrive"] for e in log), max(e["sent"] for e in log)
    candidates = len({e["id"] for e in events if e.get("type") == "candidate"})  # judged again: logged again
    wall, span = child.exited - child.started, last - first
    in_run_cpu = child.cpu_at(last) - child.cpu_at(first)
    gaps = image_to_judge_gaps(requests)
    return {
        "wall": wall, "bound": bound, "ratio": wall / bound, "span": span, "span_ratio": span / bound,
        "startup": first - child.started, "tail": child.exited - last, "outside_span": wall - span,
        "cpu": child.cpu, "cpu_per_candidate_ms": 1000 * child.cpu / max(1, candidates),
        "in_run_cpu_per_candidate_ms": 1000 * in_run_cpu / max(1, candidates),
        "cpu_before_first_request": child.cpu_at(first), "candidates": candidates, "requests": len(log),
        "steps": sum(1 for e in events if e.get("type") == "step"), "unmatched_steps": unmatched,
        "image_to_judge_median": statistics.median(gaps) if gaps else None,
        "image_to_judge_max": max(gaps) if gaps else None,
        "image_arrivals": sorted(e["arrive"] for e in log if e["service"] == "image"),
        "settings": yaml.safe_load((child.run_dir / "run.yaml").read_text()).get("settings", {}),
        "chains": chains, "load_average": [load_before, os.getloadavg()[0]],
    }


def endpoints(url: str) -> dict[str, Any]:
    return {role: {"base_url": url} for role in ("text", "image", "vision")}


UNBOUND_LIMITS = {"window_s": 1.0, **{s: {"concurrency": 256, "rpm": None} for s in ("text", "image", "vision")}}


NUMERIC = ("wall", "bound", "ratio", "span", "span_ratio", "startup", "tail", "outside_span", "cpu",
           "cpu_per_candidate_ms", "in_run_cpu_per_candidate_ms", "cpu_before_first_request", "candidates",
           "requests", "steps", "unmatched_steps", "image_to_judge_median", "image_to_judge_max")


def _medians(runs: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[str, Any]:
    out = {}
    for key in keys:
        values = [r[key] for r in runs if r.get(key) is not None]
        out[key] = statistics.median(values) if values else None
    return out


def _scenario(profile: Any, latency: dict[str, float], config_of: Any, extra: Any, label: str,
              summarise: Any) -> dict[str, Any]:
    """Every seed against each CLI in `profile.cli` (comma-separated; default: the installed one), taken
    in turn seed by seed, so that several checkouts meet the same machine load; one summary per CLI
    (under "compare" when there are several)."""
    import tempfile

    clis = profile.cli.split(",") if profile.cli else [None]
    runs: dict[int, list[dict[str, Any]]] = {i: [] for i in range(len(clis))}
    with loopback_server(profile.real_side) as server:
        for seed in range(profile.repeats):
            for i, cli in enumerate(clis):
                with tempfile.TemporaryDirectory(prefix="beamsearch-real-") as folder:
                    run = measure(server, Path(folder), config_of(server.url), profile.real_shape, seed, latency,
                                  profile.jitter, cli)
                run.update(extra(run))
                for private in ("chains", "image_arrivals", "settings"):
                    run.pop(private)
                runs[i].append(run)
                print(f"{label} [{beamsearch_command(cli)}] seed {seed}: wall {run['wall']:.2f} s, bound "
                      f"{run['bound']:.2f} s (x{run['ratio']:.2f}), span x{run['span_ratio']:.3f}, start-up "
                      f"{run['startup']:.2f} s, tail {run['tail']:.2f} s, CPU {run['cpu_per_candidate_ms']:.0f} ms "
                      f"per candidate ({run['in_run_cpu_per_candidate_ms']:.0f} in the span)", file=sys.stderr, flush=True)
        image_bytes = server.image_bytes
    n, m, iterations = profile.real_shape
    results = [summarise({"n": n, "m": m, "iterations": iterations, "image_side": profile.real_side,
                          "image_bytes": image_bytes, "latency": latency, "cli": beamsearch_command(cli),
                          "runs": runs[i]}) for i, cli in enumerate(clis)]
    return results[0] if len(results) == 1 else {"compare": results}


def real_path(profile: Any) -> dict[str, Any]:
    """Limits raised so that they never bind: what is left is beamsearch on the real path."""
    latency = {"text": profile.text, "image": profile.image, "vision": profile.vision}
    return _scenario(profile, latency, lambda url: {**endpoints(url), "limits": UNBOUND_LIMITS}, lambda run: {},
                     "real path", lambda result: {**result, **_medians(result["runs"], NUMERIC)})


def real_path_unshrunk(profile: Any) -> dict[str, Any]:
    """The same, with `vision.vision_max_side: null`: each judge sends the image as it is instead of
    decoding, shrinking and re-encoding it per call, so the rest of beamsearch's cost shows on its own."""
    latency = {"text": profile.text, "image": profile.image, "vision": profile.vision}

    def config(url: str) -> dict[str, Any]:
        roles = endpoints(url)
        roles["vision"]["vision_max_side"] = None
        return {**roles, "limits": UNBOUND_LIMITS}

    return _scenario(profile, latency, config, lambda run: {}, "real path, unshrunk",
                     lambda result: {**result, **_medians(result["runs"], NUMERIC)})


def rate_check(run: dict[str, Any]) -> dict[str, Any]:
    """Did image requests ever arrive faster than the configured limit allows (over the limiter's window,
    and over any minute)? And the least time the provider's own per-minute budget would allow."""
    limits = run["settings"].get("limits", {})
    rpm, window = limits.get("image", {}).get("rpm"), float(limits.get("window_s", 60.0))
    out: dict[str, Any] = {"image_rpm": rpm, "window_s": window,
                           "image_concurrency": limits.get("image", {}).get("concurrency")}
    if rpm is None:
        return {**out, "rate_respected": True, "max_in_window": None, "max_in_minute": None,
                "bound_with_rate": run["bound"], "ratio_with_rate": run["ratio"]}
    check = bounds.check_window(run["image_arrivals"], rpm, window)
    with_rate = max(run["bound"], bounds.rate_limited_bound(run["chains"], rpm, 60.0))
    return {**out, "rate_respected": check.within(rpm), "allowed_per_period": check.allowed,
            "period_s": check.period, "max_in_window": check.max_in_period,
            "min_gap_allowed_apart": check.min_gap_allowed_apart, "max_in_minute": check.max_in_minute,
            "bound_with_rate": with_rate, "ratio_with_rate": run["wall"] / with_rate}


def _rate_summary(result: dict[str, Any]) -> dict[str, Any]:
    runs = result["runs"]
    keys = NUMERIC + ("bound_with_rate", "ratio_with_rate", "max_in_window", "max_in_minute")
    return {**result, **_medians(runs, keys), "rate_respected": all(r["rate_respected"] for r in runs),
            **{k: runs[0][k] for k in ("image_rpm", "window_s", "image_concurrency")}}


def default_limits(profile: Any) -> dict[str, Any]:
    """Default settings (only the endpoints set), slow images: do the defaults let an iteration run at once?"""
    latency = {"text": profile.text, "image": profile.default_image, "vision": profile.vision}
    return _scenario(profile, latency, endpoints, rate_check, "default limits", _rate_summary)
