"""What the user sees: a rich live view on a terminal, plain lines otherwise, one JSON event per line for
scripts; and the tables of `show`, `list` and `estimate`. Displays only listen to progress events; they
never steer the search.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from beamsearch.events import Candidate, Event, FinalCheck, LaneFailed, Ranking, RunFinished, RunStarted, Step
from beamsearch.progress import AttemptFailed, IterationStarted, Ranked, Result, StageChanged
from beamsearch.view import RunView

LANE_ROWS_UP_TO = 16
STAGES = ("expand", "critique", "refine", "combine", "image", "judge", "done", "failed", "skipped")
FINISHED = ("done", "failed", "skipped")


class Tracker:
    """Folds events into the state a display shows: the run's view (scores, rankings, spend of this
    session) plus what only progress events tell (each lane's stage, retries)."""

    def __init__(self, m: int = 3, iterations: int | None = None, max_cost: float | None = None) -> None:
        self.m = m
        self.iterations = iterations
        self.max_cost = max_cost
        self.view = RunView()
        self.iteration = 0
        self.dimension = "expand"
        self.lanes: dict[str, dict[str, Any]] = {}
        self.spent_before = 0.0  # a resumed run replays its paid steps silently: start from what they cost
        self.retries = 0
        self.best: tuple[str, float] | None = None
        self.survivors: list[str] = []
        self.started = time.monotonic()

    @property
    def spent(self) -> float:
        return self.spent_before + self.view.spent

    @property
    def steps_done(self) -> int:
        return sum(u.calls for u in self.view.usage.values())

    def update(self, event: Event) -> None:
        self.view.apply(event)
        if isinstance(event, RunStarted):
            self.spent_before = event.spent_usd
        elif isinstance(event, IterationStarted):
            self.iteration, self.dimension = event.iteration, event.dimension
            self.lanes = {}
        elif isinstance(event, StageChanged):
            self._stage(event)
        elif isinstance(event, AttemptFailed):
            self.retries += 1
        elif isinstance(event, Candidate):
            self._scored(event.id, event.total)
        elif isinstance(event, Ranked):
            self.best = (event.best, event.best_total)
            self.survivors = list(event.survivors)
        elif isinstance(event, FinalCheck):  # the survivors judged again: the answer, by its average
            self.best = (event.best, self.view.candidates[event.best].total if event.best in self.view.candidates
                         else dict(event.pool).get(event.best) or 0.0)

    def _stage(self, event: StageChanged) -> None:
        now = time.monotonic()
        lane = self.lanes.setdefault(event.id, {"parent": event.parent, "started": now})
        lane["stage"] = event.stage
        for name in ("total", "alignment", "aesthetic", "error"):
            if getattr(event, name) is not None:
                lane[name] = getattr(event, name)
        if event.stage in FINISHED:
            lane["finished"] = now
        if event.stage == "done" and event.total is not None:
            self._scored(event.id, event.total)

    def _scored(self, cid: str, total: float) -> None:
        if self.best is None or total > self.best[1] or (total == self.best[1] and _order(cid) < _order(self.best[0])):
            self.best = (cid, total)

    def score_of(self, cid: str) -> float | None:
        if cid in self.view.candidates:
            return self.view.candidates[cid].total
        lane = self.lanes.get(cid, {})
        return lane.get("total")

    def top(self) -> list[tuple[str, float]]:
        """The beam if the iteration were ranked now: this iteration's scored lanes plus the survivors."""
        pool = {cid for cid, lane in self.lanes.items() if lane.get("stage") == "done"} | set(self.survivors)
        scored = [(cid, total) for cid in pool if (total := self.score_of(cid)) is not None]
        return sorted(scored, key=lambda item: (-item[1], _order(item[0])))[: self.m]

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STAGES, 0)
        for lane in self.lanes.values():
            stage = lane.get("stage", "expand")
            counts[stage] = counts.get(stage, 0) + 1
        return counts


def _order(cid: str) -> tuple[int, int]:
    """i2c07 -> (2, 7), so ties go to the earlier candidate as in the ranking."""
    try:
        iteration, index = cid[1:].split("c", 1)
        return int(iteration), int(index)
    except ValueError:
        return (1 << 30, 0)


def header(t: Tracker) -> Text:
    best = f"{t.best[1]:.1f} ({t.best[0]})" if t.best else "-"
    of = f"/{t.iterations - 1}" if t.iterations else ""
    spent = f"${t.spent:.4f}" + (f" of ${t.max_cost:.2f}" if t.max_cost else "")
    dimension = "expanding the idea" if t.dimension == "expand" else f"refining {t.dimension.upper()}"
    return Text.assemble(
        ("iteration ", "dim"), (f"{t.iteration}{of}", "bold"), ("  ", ""), (dimension, "bold cyan"),
        ("  best so far ", "dim"), (best, "bold green"), ("  spent ", "dim"), (spent, "bold"),
        ("  retries ", "dim"), (str(t.retries), "bold yellow" if t.retries else "bold"),
        ("  elapsed ", "dim"), (f"{time.monotonic() - t.started:.0f}s", ""),
    )


class LiveDisplay:
    """A rich live view: a header, then a row per lane (small N) or counts per stage and the top M."""

    def __init__(self, console: Console, m: int, label: str, iterations: int | None = None,
                 max_cost: float | None = None) -> None:
        self.console = console
        self.tracker = Tracker(m, iterations, max_cost)
        self.label = label
        self.live = Live(console=console, refresh_per_second=4, transient=False, get_renderable=self.render)

    def __enter__(self) -> LiveDisplay:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.live.refresh()
        self.live.__exit__(*exc)

    def __call__(self, event: Event) -> None:
        self.tracker.update(event)  # the live view redraws itself a few times a second

    def render(self) -> Group:
        t = self.tracker
        parts: list[Any] = [Text(self.label, style="dim"), header(t)]
        if len(t.lanes) <= LANE_ROWS_UP_TO:
            parts.append(self.lane_table())
        else:
            counts = t.counts()
            parts.append(Text("  ".join(f"{stage}: {count}" for stage, count in counts.items() if count)))
            top = ", ".join(f"{cid} {total:.1f}" for cid, total in t.top())
            parts.append(Text.assemble(("top ", "dim"), (str(t.m), "dim"), (": ", "dim"), (top or "-", "")))
        return Group(*parts)

    def lane_table(self) -> Table:
        t = self.tracker
        table = Table(box=None, pad_edge=False)
        for column in ("lane", "parent", "stage", "elapsed", "align", "aesth", "total"):
            table.add_column(column, justify="right" if column in ("elapsed", "align", "aesth", "total") else "left")
        now = time.monotonic()
        for cid, lane in sorted(t.lanes.items()):
            stage = lane.get("stage", "")
            style = {"done": "green", "failed": "red"}.get(stage, "")
            if cid == (t.best or ("", 0))[0]:
                style = "bold green"
            elapsed = lane.get("finished", now) - lane["started"]
            shown = stage if stage != "failed" else f"failed: {lane.get('error', '')}"[:60]
            table.add_row(cid, lane.get("parent") or "", Text(shown, style=style), f"{elapsed:.1f}s",
                          _fmt(lane.get("alignment"), 0), _fmt(lane.get("aesthetic")), _fmt(lane.get("total")))
        return table


def _fmt(value: float | None, digits: int = 1) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def plain_line(event: Event) -> str | None:
    """The one line a finished step (or candidate, ranking, run boundary) prints when stdout is no terminal."""
    if isinstance(event, Step):
        return (f"step {event.key} ({event.service}) done in {event.elapsed:.2f}s, "
                f"attempts {event.attempts}, ${event.cost:.4f}")
    if isinstance(event, AttemptFailed):
        return f"retry {event.key} attempt {event.attempt} failed: {event.error}"
    if isinstance(event, Candidate):
        return (f"candidate {event.id} total {event.total:.1f} (alignment {event.alignment:.0f}, "
                f"aesthetic {event.aesthetic:.1f})")
    if isinstance(event, LaneFailed):
        return f"candidate {event.id} failed: {event.error}"
    if isinstance(event, Ranking):
        best = event.pool[0] if event.pool else None
        tail = f"; best {best[0]} {best[1]:.1f}" if best and best[1] is not None else ""
        return f"iteration {event.iteration} ranked: survivors {', '.join(event.survivors)}{tail}"
    if isinstance(event, IterationStarted):
        return f"iteration {event.iteration} started ({event.dimension}, {event.lanes} lanes)"
    if isinstance(event, RunStarted):
        return f"run resumed (${event.spent_usd:.4f} spent before)" if event.resumed else "run started"
    if isinstance(event, RunFinished):
        return f"run {event.status}: {event.reason} (spent ${event.cost_usd:.4f})"
    return None


class PlainDisplay:
    """One line per finished step, candidate and ranking, for logs and pipes."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream

    def __call__(self, event: Event) -> None:
        line = plain_line(event)
        if line:
            print(line, file=self.stream or sys.stdout, flush=True)


class JsonDisplay:
    """Every event as one JSON object per line on stdout, and nothing else there."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream

    def __call__(self, event: Event) -> None:
        stream = self.stream or sys.stdout
        stream.write(event.to_line() + "\n")
        stream.flush()


def result_event(summary: dict[str, Any], run_dir: str, exit_code: int) -> Result:
    """The last line of `run --json`: where the run is and what it found."""
    best = summary.get("best") or None
    return Result(run_dir=run_dir, status=summary.get("status"), reason=summary.get("reason"), exit_code=exit_code,
                  cost_usd=summary.get("cost_usd", 0.0),
                  best=None if best is None else {k: best.get(k) for k in ("id", "total", "alignment", "aesthetic",
                                                                          "what", "how", "prompt", "image")},
                  lineage=summary.get("lineage", []))


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
        table.add_row("WHAT", Text(best["what"]))
        table.add_row("HOW", Text(best["how"]))
        table.add_row("prompt", Text(best["prompt"]))
        table.add_row("image", f"{run_dir}/{best['image']}")
        table.add_row("lineage", " -> ".join(summary.get("lineage", [])))
    table.add_row("cost", _cost_line(summary) + (" (simulated)" if _simulated(summary) else ""))
    table.add_row("provider", _provider_line(summary))
    table.add_row("status", Text(f"{summary.get('status')}: {summary.get('reason')}"))
    table.add_row("run folder", run_dir)
    table.add_row("report", f"{run_dir}/report.html")
    return table


def _simulated(summary: dict[str, Any]) -> bool:
    return "sim" in (summary.get("provider") or {}).values()


def _provider_line(summary: dict[str, Any]) -> str:
    """Which provider served each role; the simulator is named as such, so no one mistakes its output."""
    roles = summary.get("provider") or {}
    names = {"sim": "simulator (offline; images and scores are simulated)", "openai": "openai-compatible"}
    if len(set(roles.values())) == 1:
        return names.get(next(iter(roles.values())), str(next(iter(roles.values()))))
    return ", ".join(f"{role} {names.get(p, p)}" for role, p in roles.items())


def _cost_line(summary: dict[str, Any]) -> str:
    costs = ", ".join(f"{s} ${u['cost_usd']:.4f}" for s, u in summary.get("usage", {}).items())
    return f"${summary.get('cost_usd', 0):.4f} ({costs})" if costs else "$0"


# --- show, list, estimate -------------------------------------------------------------------------


def show_view(data: dict[str, Any]) -> Group:
    """`beamsearch show`: facts, the best candidate, its family tree, iterations and cost by service."""
    facts = Table(show_header=False, box=None, pad_edge=False)
    facts.add_column("field", style="bold")
    facts.add_column("value", overflow="fold")
    facts.add_row("run", data["run_dir"])
    facts.add_row("prompt", Text(data.get("prompt") or ""))
    facts.add_row("status", Text(f"{data['status']}" + (f": {data['reason']}" if data.get("reason") else "")))
    facts.add_row("created", str(data.get("created") or ""))
    search = data.get("search") or {}
    facts.add_row("search", " ".join(f"{k}={v}" for k, v in search.items()))
    providers = data.get("provider") or {}
    facts.add_row("providers", ", ".join(f"{role} {name}" for role, name in providers.items()))
    parts: list[Any] = [facts]
    best = data.get("best")
    if best:
        parts.append(result_table({**data, "lineage": [c["id"] for c in data["family_tree"]]}, data["run_dir"]))
    else:
        parts.append(Text("No candidate was scored yet."))
    tree = Table(title="Family tree of the best (oldest first)", title_justify="left")
    for column in ("id", "parent", "changed", "total", "align", "aesth", "WHAT / HOW"):
        tree.add_column(column, overflow="fold")
    for node in data.get("family_tree", []):
        text = node["what"] if node["changed"] in ("expanded", "what") else node["how"]
        tree.add_row(node["id"], node.get("parent") or "", node["changed"], _fmt(node.get("total")),
                     _fmt(node.get("alignment"), 0), _fmt(node.get("aesthetic")), Text(text or ""))
    if data.get("family_tree"):
        parts.append(tree)
    iterations = Table(title="Iterations", title_justify="left")
    for column in ("iteration", "dimension", "best so far", "best child", "median child", "survivors", "failed"):
        iterations.add_column(column)
    for it in data.get("iterations", []):
        iterations.add_row(str(it["iteration"]), str(it.get("dimension")), f"{_fmt(it.get('best_total'))} ({it.get('best_id')})",
                           _fmt(it.get("children_best")), _fmt(it.get("children_median")), ", ".join(it.get("survivors") or []),
                           str(len(it.get("failed") or [])))
    if data.get("iterations"):
        parts.append(iterations)
    parts.append(usage_table(data.get("usage", {}), data.get("cost_usd", 0.0)))
    return Group(*parts)


def usage_table(usage: dict[str, Any], total: float) -> Table:
    table = Table(title="Cost by service", title_justify="left")
    for column in ("service", "calls", "attempts", "input tokens", "output tokens", "images", "cost"):
        table.add_column(column, justify="left" if column == "service" else "right")
    for service, u in usage.items():
        table.add_row(service, str(u.get("calls", 0)), str(u.get("attempts", 0)), str(u.get("input_tokens", 0)),
                      str(u.get("output_tokens", 0)), str(u.get("images", 0)), f"${u.get('cost_usd', 0.0):.4f}")
    table.add_row("total", "", "", "", "", "", f"${total:.4f}", style="bold")
    return table


def runs_table(runs: list[Any]) -> Table:
    """`beamsearch list`: newest first, two lines per run: the facts and the prompt, then the folder name
    (what `show`, `report` and `resume` take), which is folded rather than cut when the terminal is narrow."""
    table = Table(title="Runs (newest first)", title_justify="left", box=None, pad_edge=False)
    table.add_column("date", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("best", justify="right", no_wrap=True)
    table.add_column("cost", justify="right", no_wrap=True)
    table.add_column("prompt / folder")
    styles = {"done": "green", "running": "cyan", "stopped": "yellow", "failed": "red"}
    for run in runs:
        best = f"{run.best_score:.1f}" if run.best_score is not None else "-"
        cell = Text(run.prompt, no_wrap=True, overflow="ellipsis")
        table.add_row(run.created.replace("T", " ")[:16], Text(run.status, style=styles.get(run.status, "")), best,
                      f"${run.cost_usd:.2f}", cell)
        table.add_row("", "", "", "", Text(run.name, style="dim", overflow="fold"), end_section=True)
    return table


def estimate_view(data: dict[str, Any], settings: Any) -> Group:
    """`beamsearch estimate`: calls per service and task, a cost range and a time lower bound."""
    calls = Table(title=f"Calls (N={settings.n}, M={settings.m}, {settings.iterations} iterations)", title_justify="left")
    for column in ("service", "calls", "low cost", "high cost"):
        calls.add_column(column, justify="left" if column == "service" else "right")
    cost = data["cost"]
    for service, count in data["calls"]["by_service"].items():
        band = cost["by_service"][service]
        calls.add_row(service, str(count), f"${band['low_usd']:.4f}", f"${band['high_usd']:.4f}")
    calls.add_row("total", str(data["calls"]["total"]), f"${cost['low_usd']:.4f}", f"${cost['high_usd']:.4f}", style="bold")
    tasks = Text("by task: " + ", ".join(f"{task} {count}" for task, count in data["calls"]["by_task"].items()), style="dim")
    time_data = data["time"]
    assumed = ", ".join(f"{s} {v:g}s" for s, v in time_data["latency_assumed"].items())
    binding = ", ".join(f"{i['iteration']}: {i['seconds']:g}s ({i['bound_by']})" for i in time_data["per_iteration"])
    lines = [calls, tasks,
             Text.assemble(("time lower bound ", "bold"), (f"{_duration(time_data['seconds'])}", "bold"),
                           (f" (bound by {time_data.get('bound_by', 'iterations')})", ""),
                           (f" at typical latencies ({assumed})", "dim")),
             Text(f"per iteration: {binding}", style="dim")]
    lines += [Text(note, style="dim") for note in data.get("notes", [])]
    return Group(*lines)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m {rest:02d}s" if minutes < 60 else f"{minutes // 60}h {minutes % 60:02d}m"
