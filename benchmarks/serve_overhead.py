"""Serving never holds a run up: the same simulator run with and without a page connected.

    python benchmarks/serve_overhead.py                 # 5 pairs, N=9 / M=3 / 4 iterations, SSE client
    python benchmarks/serve_overhead.py --client browser  # the page itself, in Debian's chromium
    python benchmarks/serve_overhead.py --quick         # 1 tiny pair (seconds)

Each pair runs one seed twice, in a fresh event loop and run folder each time: once alone, once with
the web view served in the run's own loop (as `run --serve` will) and a page connected to the run's
event stream from its first line to `run_finished`: an SSE client in another process (a browser's
EventSource does what it does), or a real chromium page that also draws everything. The simulator
draws the same latencies for the same seed, so the difference is what serving costs. The order within
a pair alternates, so drift on the machine does not favour one side. Target: within 2% (DESIGN.md 8).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from beamsearch.events import Event  # noqa: E402
from benchmarks import harness  # noqa: E402

TARGET = 1.02


async def one_run(settings: Any, page: str | None) -> dict[str, Any]:
    """One search in this loop; with `page`, served and watched by a page of that kind from the start."""
    from beamsearch import app
    from beamsearch.serve import LiveBus, serving

    marks: dict[str, float] = {}

    folder: list[Path] = []
    client: asyncio.subprocess.Process | None = None

    def listen(event: Event) -> None:
        if event.type in ("run_started", "run_finished"):
            marks[event.type] = time.perf_counter()
            marks[event.type + "_cpu"] = time.process_time()
        if event.type == "run_started" and client is not None:
            send_name(client, folder[0].name)  # the page opens as the run starts (its folder is locked by now)

    sim = harness.RecordingSimulator(settings.seed, settings.sim)
    if page is None:
        await app.start_run(settings, [listen], providers=sim.providers())
        return {"wall": marks["run_finished"] - marks["run_started"],
                "cpu": marks["run_finished_cpu"] - marks["run_started_cpu"], "events_seen": None}
    bus = LiveBus()
    async with serving(settings.runs_dir, port=0, live_bus=bus) as server:
        client = await start_client(page, server.url)
        try:
            probe = harness.FolderProbe(on_made=folder.append)  # the bus attaches itself on run_opened
            await app.start_run(settings, [probe, listen, bus], providers=sim.providers())
            seen = await finish_client(client)
        finally:
            if client.returncode is None:
                client.kill()
                await client.wait()
    return {"wall": marks["run_finished"] - marks["run_started"], "cpu": marks["run_finished_cpu"] - marks["run_started_cpu"],
            "events_seen": seen, "streams_opened": server.streams.opened}


async def start_client(page: str, url: str) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(sys.executable, __file__, "--as-client", page, url,
                                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert process.stdout is not None
    ready = await asyncio.wait_for(process.stdout.readline(), 60)  # the browser, if any, has started
    assert ready.strip() == b"ready", ready
    return process


def send_name(client: asyncio.subprocess.Process, name: str) -> None:
    assert client.stdin is not None
    client.stdin.write(name.encode() + b"\n")


async def finish_client(client: asyncio.subprocess.Process) -> int:
    assert client.stdout is not None
    line = await asyncio.wait_for(client.stdout.readline(), 60)
    await client.wait()
    return int(json.loads(line)["events"])


# --- the page, in its own process ------------------------------------------------------------------


def sse_client(base: str, name: str) -> int:
    """Consume the run's stream like an EventSource until run_finished; the number of logged events."""
    import httpx2

    events = 0
    with httpx2.Client(trust_env=False, timeout=httpx2.Timeout(120.0)) as client:
        with client.stream("GET", f"{base}runs/{name}/events", headers={"accept": "text/event-stream"}) as response:
            kind = "message"
            for line in response.iter_lines():
                if line.startswith("event:"):
                    kind = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and kind == "message":
                    events += 1
                    if json.loads(line.split(":", 1)[1]).get("type") == "run_finished":
                        return events
                elif line == "":
                    kind = "message"
    return events


def browser_client(base: str, name: str, ready: Any) -> int:
    """A real page in Debian's chromium, drawing everything, until it shows the run as over."""
    import tempfile

    from playwright.sync_api import sync_playwright

    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        context = playwright.chromium.launch_persistent_context(profile, executable_path="/usr/bin/chromium",
                                                                args=args, headless=True)
        page = context.pages[0] if context.pages else context.new_page()
        ready()
        run = sys.stdin.readline().strip()
        page.goto(f"{base}runs/{run}/")
        page.wait_for_function("() => ['done', 'stopped', 'failed'].includes(document.body.dataset.status)", timeout=120_000)
        events = int(page.evaluate("() => Number(document.body.dataset.events)"))
        context.close()
    return events


def as_client(page: str, base: str) -> None:
    def ready() -> None:
        print("ready", flush=True)

    if page == "browser":
        events = browser_client(base, "", ready)
    else:
        ready()
        events = sse_client(base, sys.stdin.readline().strip())
    print(json.dumps({"events": events}), flush=True)


# --- the comparison --------------------------------------------------------------------------------


def pair(seed: int, shape: tuple[int, int, int], latencies: dict[str, float], page: str, with_first: bool) -> dict[str, Any]:
    n, m, iterations = shape
    runs: dict[str, Any] = {}
    for side in (("with", "without") if with_first else ("without", "with")):
        with harness.scratch() as folder:
            settings = harness.settings_for(folder, n=n, m=m, iterations=iterations, seed=seed, **latencies)
            runs[side] = asyncio.run(one_run(settings, page if side == "with" else None))
    ratio = runs["with"]["wall"] / runs["without"]["wall"]
    harness_log(f"seed {seed}: alone {runs['without']['wall']:.3f} s, with a page {runs['with']['wall']:.3f} s, "
                f"ratio {ratio:.4f} (page saw {runs['with']['events_seen']} events)")
    return {"seed": seed, "without": runs["without"], "with": runs["with"], "ratio": ratio}


def harness_log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description="the cost of serving a page during a run")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--client", choices=("sse", "browser"), default="sse")
    parser.add_argument("--quick", action="store_true", help="one tiny pair, seconds")
    parser.add_argument("--json", type=Path, help="also write the raw numbers here")
    parser.add_argument("--as-client", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.as_client:
        as_client(*args.as_client)
        return {}
    shape, latencies, pairs = (9, 3, 4), {"text": 0.2, "image": 1.0, "vision": 0.3, "jitter": 0.5}, args.pairs
    if args.quick:
        shape, latencies, pairs = (3, 1, 2), {"text": 0.01, "image": 0.05, "vision": 0.02, "jitter": 0.5}, 1
    rows = [pair(seed, shape, latencies, args.client, with_first=seed % 2 == 1) for seed in range(pairs)]
    ratios = [r["ratio"] for r in rows]
    result = {"shape": shape, "latencies": latencies, "client": args.client, "pairs": rows,
              "median_ratio": statistics.median(ratios), "worst_ratio": max(ratios),
              "median_cpu_added_s": statistics.median(r["with"]["cpu"] - r["without"]["cpu"] for r in rows),
              "target_ratio": TARGET}
    verdict = "met" if result["median_ratio"] <= TARGET else "missed"
    print(f"N={shape[0]} M={shape[1]} {shape[2]} iterations, {pairs} pairs, page: {args.client}: wall with a page / "
          f"alone = {result['median_ratio']:.4f} median, {result['worst_ratio']:.4f} worst; run-process CPU added "
          f"{result['median_cpu_added_s']:.3f} s (median); target <= {TARGET}: {verdict}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))
    return result


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
