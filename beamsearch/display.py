"""What the user sees while a run goes on: a rich live view on a terminal, plain lines otherwise, or
one JSON event per line for scripts. Displays only listen to progress events; they never steer."""

from __future__ import annotations

import json
import sys
import time
from typing import IO, Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

LANE_ROWS_UP_TO = 16
STAGES = ("expand", "critique", "refine", "combine", "image", "judge", "done", "failed")


class Tracker:
    """Folds progress events into the state a display shows."""

    def __init__(self, m: int = 3) -> None:
        self.m = m
        self.iteration = 0
        self.dimension = "expand"
        self.lanes: dict[str, dict[str, Any]] = {}
        self.spent = 0.0
        self.retries = 0
        self.best: tuple[str, float] | None = None
        self.survivors: list[str] = []
        self.steps_done = 0
        self.replayed = 0

    def update(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "iteration_started":
            self.iteration, self.dimension = event["iteration"], event["dimension"]
            self.lanes = {}
        elif kind == "stage":
            lane = self.lanes.setdefault(event["id"], {"parent": event.get("parent"), "since": time.monotonic(),
                                                        "started": time.monotonic()})
            lane["stage"] = event["stage"]
            lane["since"] = time.monotonic()
            for field in ("total", "alignment", "aesthetic", "error"):
                if field in event:
                    lane[field] = event[field]
        elif kind == "step":
            self.spent += event.get("cost", 0.0)
            self.steps_done += 1
        elif kind == "attempt_failed":
            self.retries += 1
        elif kind == "ranked":
            self.best = (event["best"], event["best_total"])
            self.survivors = event["survivors"]

    def top(self) -> list[tuple[str, float]]:
        done = [(cid, lane["total"]) for cid, lane in self.lanes.items() if "total" in lane]
        return sorted(done, key=lambda item: (-item[1], item[0]))[: self.m]


class LiveDisplay:
    """A rich live view: a header, then a row per lane (small N) or counts per stage and the top M."""

    def __init__(self, console: Console, m: int, label: str) -> None:
        self.console = console
        self.tracker = Tracker(m)
        self.label = label
        self.live = Live(self.render(), console=console, refresh_per_second=8, transient=False)

    def __enter__(self) -> LiveDisplay:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.live.update(self.render())
        self.live.__exit__(*exc)

    def __call__(self, event: dict[str, Any]) -> None:
        self.tracker.update(event)
        if event.get("type") in ("stage", "ranked", "iteration_started", "attempt_failed"):
            self.live.update(self.render())

    def render(self) -> Group:
        t = self.tracker
        best = f"{t.best[1]:.1f} ({t.best[0]})" if t.best else "-"
        header = Text.assemble(
            ("iteration ", "dim"), (str(t.iteration), "bold"), ("  refining ", "dim"), (t.dimension.upper(), "bold cyan"),
            ("  best ", "dim"), (best, "bold green"), ("  spent ", "dim"), (f"${t.spent:.4f}", "bold"),
            ("  retries ", "dim"), (str(t.retries), "bold yellow" if t.retries else "bold"),
        )
        parts: list[Any] = [Text(self.label, style="dim"), header]
        if len(t.lanes) <= LANE_ROWS_UP_TO:
            table = Table(box=None, pad_edge=False)
            for column in ("lane", "parent", "stage", "elapsed", "align", "aesth", "total"):
                table.add_column(column, justify="right" if column in ("elapsed", "align", "aesth", "total") else "left")
            now = time.monotonic()
            for cid, lane in sorted(t.lanes.items()):
                stage = lane.get("stage", "")
                style = {"done": "green", "failed": "red"}.get(stage, "")
                table.add_row(cid, lane.get("parent") or "", Text(stage, style=style), f"{now - lane['started']:.1f}s",
                              _fmt(lane.get("alignment")), _fmt(lane.get("aesthetic")), _fmt(lane.get("total")))
            parts.append(table)
        else:
            counts = {stage: 0 for stage in STAGES}
            for lane in t.lanes.values():
                counts[lane.get("stage", "expand")] = counts.get(lane.get("stage", "expand"), 0) + 1
            parts.append(Text("  ".join(f"{stage}: {count}" for stage, count in counts.items() if count)))
            parts.append(Text("top: " + ", ".join(f"{cid} {total:.1f}" for cid, total in t.top())))
        return Group(*parts)


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


class PlainDisplay:
    """One line per finished step, candidate and ranking, for logs and pipes."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stdout

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        line = None
        if kind == "step":
            line = f"step {event['key']} done in {event['elapsed']:.2f}s (attempts {event['attempts']}, ${event['cost']:.4f})"
        elif kind == "attempt_failed":
            line = f"retry {event['key']} attempt {event['attempt']} failed: {event['error']}"
        elif kind == "candidate":
            line = (f"candidate {event['id']} total {event['total']:.1f} (alignment {event['alignment']:.0f}, "
                    f"aesthetic {event['aesthetic']:.1f})")
        elif kind == "lane_failed":
            line = f"candidate {event['id']} failed: {event['error']}"
        elif kind == "ranking":
            line = f"iteration {event['iteration']} ranked: survivors {', '.join(event['survivors'])}"
        elif kind == "iteration_started":
            line = f"iteration {event['iteration']} started ({event['dimension']})"
        if line:
            print(line, file=self.stream, flush=True)


class JsonDisplay:
    """Every event as one JSON object per line on stdout, and nothing else there."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stdout

    def __call__(self, event: dict[str, Any]) -> None:
        self.stream.write(json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n")
        self.stream.flush()


def result_table(summary: dict[str, Any], run_dir: str) -> Table:
    best = summary.get("best")
    table = Table(title="Best candidate", show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    if best is None:
        table.add_row("result", "no candidate was scored")
    else:
        table.add_row("id", best["id"])
        table.add_row("total", f"{best['total']:.1f}")
        table.add_row("alignment", f"{best['alignment']:.0f} / 100")
        table.add_row("aesthetic", f"{best['aesthetic']:.1f} / 10")
        table.add_row("WHAT", best["what"])
        table.add_row("HOW", best["how"])
        table.add_row("prompt", best["prompt"])
        table.add_row("image", f"{run_dir}/{best['image']}")
        table.add_row("lineage", " -> ".join(summary.get("lineage", [])))
    costs = ", ".join(f"{s} ${u['cost_usd']:.4f}" for s, u in summary.get("usage", {}).items())
    table.add_row("cost", f"${summary.get('cost_usd', 0):.4f} ({costs})" if costs else "$0")
    table.add_row("status", f"{summary.get('status')}: {summary.get('reason')}")
    table.add_row("run folder", run_dir)
    return table
