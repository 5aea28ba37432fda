"""Where the real path's span goes beyond the bound: main's CLI over loopback HTTP (unshrunk, limits
raised, N=9 M=3, 3 iterations, seeds 0-2) with the engine's issue-12 behaviours switched off in turn.

    python benchmarks/real_path_settings.py [--cli PATH]

Re-judging adds vision calls that share the CPU with the lanes; distinct children make a lane's image
wait until the lanes before it have their prompts (so repeats are decided in lane order, the same on
every resume). Each costs some span; this measures how much. Not part of the suite (about 2 minutes).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import real_path as rp  # noqa: E402

LATENCY = {"text": 0.2, "image": 1.0, "vision": 0.3}
VARIANTS = {"defaults": {}, "rejudge: false": {"rejudge": False},
            "rejudge: false, variants: null": {"rejudge": False, "variants": None}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cli", help="the beamsearch executable (default: the one next to this Python)")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args(argv)
    runs: dict[str, list[dict]] = {name: [] for name in VARIANTS}
    with rp.loopback_server(1024) as server:
        for seed in range(args.seeds):
            for name, extra in VARIANTS.items():
                roles = rp.endpoints(server.url)
                roles["vision"]["vision_max_side"] = None
                with tempfile.TemporaryDirectory(prefix="beamsearch-real-") as folder:
                    run = rp.measure(server, Path(folder), {**roles, "limits": rp.UNBOUND_LIMITS, **extra},
                                     (9, 3, 3), seed, LATENCY, 0.5, args.cli)
                runs[name].append(run)
                print(f"{name} seed {seed}: span / bound {run['span_ratio']:.3f}, {run['requests']} requests, "
                      f"{run['in_run_cpu_per_candidate_ms']:.0f} ms CPU per candidate in the span", flush=True)
    print("\n| settings | span / bound | requests | CPU per candidate in the span (ms) |\n|---|---|---|---|")
    for name, done in runs.items():
        print(f"| {name} | {statistics.median(r['span_ratio'] for r in done):.3f} | "
              f"{statistics.median(r['requests'] for r in done):.0f} | "
              f"{statistics.median(r['in_run_cpu_per_candidate_ms'] for r in done):.0f} |")


if __name__ == "__main__":
    main()
