"""What the user sees while a run runs: a rich live view on a terminal, plain lines otherwise, one JSON
event per line for scripts. Displays only listen to progress events; they never steer the search.

The live view says what is happening: the iteration of the total ("iteration 2 of 4"), what is being
refined, the spend, the best so far, the time left by the estimate, whether this session resumed a run;
then each lane with its short WHAT and HOW, its stage and its retries (small beams), or counts per
stage, a progress bar and the lanes that are retrying (wide beams); and the last ranking's survivors,
which stay on screen until the next ranking. Every piece of foreign text goes through `terminal`.
"""

from __future__ import annotations

import sys
from typing import IO, Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from beamsearch.events import (
    AlignmentFallback,
    AttemptFailed,
    Candidate,
    Event,
    IterationStarted,
    LaneFailed,
    Ranking,
    RunFinished,
    RunStarted,
    Step,
)
from beamsearch.tables import (  # noqa: F401 - the tables commands print, re-exported for callers of display
    duration,
    estimate_view,
    fmt,
    result_event,
    result_table,
    runs_table,
    show_view,
    usage_table,
)
from beamsearch.terminal import json_safe, line
from beamsearch.terminal import rich_text as plain
from beamsearch.tracker import Lane, Tracker, order_of  # noqa: F401 - Tracker is part of display's API

LANE_ROWS_UP_TO = 16
SHOWN_RETRYING = 6  # wide beams: at most this many retrying lanes are named
SHORT = 48  # characters of WHAT and of HOW in a lane's row


def short(text: str, limit: int = SHORT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def iteration_label(t: Tracker) -> str:
    """`iteration 2 of 4 (i1)`: counted from 1 against the total, with the id prefix of its candidates."""
    of = f" of {t.iterations}" if t.iterations else ""
    return f"{t.iteration + 1}{of} (i{t.iteration})"


def header(t: Tracker) -> Text:
    best = f"{t.best[1]:.1f} ({t.best[0]})" if t.best else "-"
    spent = f"${t.spent:.4f}" + (f" of ${t.max_cost:.2f}" if t.max_cost else "")
    dimension = "expanding the idea" if t.dimension == "expand" else f"refining {t.dimension.upper()}"
    left = t.time_left()
    parts: list[tuple[str, str]] = [("resumed  ", "bold magenta")] if t.resumed else []
    parts += [
        ("iteration ", "dim"), (iteration_label(t), "bold"), ("  ", ""), (dimension, "bold cyan"),
        ("  best so far ", "dim"), (line(best), "bold green"), ("  spent ", "dim"), (spent, "bold"),
        ("  retries ", "dim"), (str(t.retries), "bold yellow" if t.retries else "bold"),
        ("  elapsed ", "dim"), (duration(t.clock() - t.started), ""),
    ]
    if left is not None:
        parts += [("  left about ", "dim"), (duration(left), "bold")]
    return Text.assemble(*parts)


def survivors_line(t: Tracker) -> Text | None:
    """The last ranking's survivors with their scores (kept parents say so), until the next ranking."""
    if t.survivors_of is None:
        return None
    named = []
    for cid in t.survivors:
        score = t.score_of(cid)
        kept = " kept" if order_of(cid)[0] < t.survivors_of else ""
        named.append(f"{cid} {fmt(score)}{kept}")
    return Text.assemble((f"survivors of iteration {t.survivors_of + 1} (i{t.survivors_of}): ", "dim"),
                         (line(", ".join(named)), "green"))


class LiveDisplay:
    """A rich live view: a header, the lanes (or counts and a progress bar), the last survivors."""

    def __init__(self, console: Console, m: int, label: str, iterations: int | None = None,
                 max_cost: float | None = None, estimate: list[float] | None = None) -> None:
        self.console = console
        self.tracker = Tracker(m, iterations, max_cost, estimate)
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
        parts: list[Any] = [plain(self.label, "dim"), header(t)]
        if len(t.lanes) <= LANE_ROWS_UP_TO:
            parts.append(self.lane_table())
        else:
            parts += self.wide_view()
        if t.other_retry:
            parts.append(Text.assemble(("retrying ", "yellow"), (line(t.other_retry), "")))
        if t.view.fallback is not None:
            parts.append(Text.assemble(("warning ", "bold yellow"), (line(t.view.fallback.message), "")))
        survivors = survivors_line(t)
        if survivors is not None:
            parts.append(survivors)
        return Group(*parts)

    def lane_table(self) -> Table:
        t = self.tracker
        table = Table(box=None, pad_edge=False, expand=False)
        for column in ("lane", "parent", "stage", "tries", "elapsed", "align", "aesth", "total"):
            table.add_column(column, justify="right" if column in ("tries", "elapsed", "align", "aesth", "total") else "left",
                             no_wrap=True)
        table.add_column("WHAT · HOW", no_wrap=True, overflow="ellipsis")
        best = (t.best or ("", 0))[0]
        rows = t.lane_view()
        stages = [self._stage_cell(row["lane"], row["lane"].id == best) for row in rows]
        # what the other columns leave of the terminal's width, shared by WHAT and HOW
        fixed = 2 * 8 + 48 + max((len(cell) for cell in stages), default=5)
        each = max(8, min(SHORT, (self.console.width - fixed) // 2))
        for row, stage in zip(rows, stages, strict=True):
            lane: Lane = row["lane"]
            table.add_row(plain(lane.id), plain(lane.parent or ""), stage, str(1 + lane.retries) if lane.retries else "",
                          f"{row['elapsed']:.1f}s", fmt(lane.alignment, 0), fmt(lane.aesthetic), fmt(lane.total),
                          self._prompts_cell(lane, each))
        return table

    @staticmethod
    def _stage_cell(lane: Lane, best: bool) -> Text:
        if lane.stage == "failed":
            return plain(short(f"failed: {lane.error or ''}", 60), "red")
        if lane.retrying:
            return plain(short(lane.retrying, 60), "yellow")
        return plain(lane.stage, "bold green" if best else {"done": "green"}.get(lane.stage, ""))

    @staticmethod
    def _prompts_cell(lane: Lane, each: int) -> Text:
        if not lane.what and not lane.how:
            return Text("")
        return Text.assemble(plain(short(lane.what, each)), (" · ", "dim"), plain(short(lane.how, each), "italic"))

    def wide_view(self) -> list[Any]:
        """More lanes than rows: counts per stage, a progress bar with the time left, who is retrying, the top M."""
        t = self.tracker
        counts = t.counts()
        parts: list[Any] = [Text("  ".join(f"{stage}: {count}" for stage, count in counts.items() if count))]
        bar = Table.grid(padding=(0, 1))
        bar.add_column(no_wrap=True)
        bar.add_column(width=40)
        bar.add_column(no_wrap=True)
        left = t.time_left()
        bar.add_row(f"lanes {t.finished_lanes()}/{t.lanes_expected or len(t.lanes)}",
                    ProgressBar(total=1.0, completed=t.progress(), width=40),
                    f"{t.progress():.0%} of the run" + (f", about {duration(left)} left" if left is not None else ""))
        parts.append(bar)
        retrying = [lane for _, lane in sorted(t.lanes.items()) if lane.retrying]
        if retrying:
            named = "; ".join(f"{lane.id} {short(lane.retrying or '', 50)}" for lane in retrying[:SHOWN_RETRYING])
            more = f" and {len(retrying) - SHOWN_RETRYING} more" if len(retrying) > SHOWN_RETRYING else ""
            parts.append(Text.assemble(("retrying ", "yellow"), (line(named + more), "")))
        top = ", ".join(f"{cid} {total:.1f}" for cid, total in t.top())
        parts.append(Text.assemble(("top ", "dim"), (str(t.m), "dim"), (": ", "dim"), (line(top) or "-", "")))
        return parts


def plain_line(event: Event) -> str | None:
    """The one line a finished step (or candidate, ranking, run boundary) prints when stdout is no terminal."""
    text = _plain_line(event)
    return None if text is None else line(text)


def _plain_line(event: Event) -> str | None:
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
    if isinstance(event, AlignmentFallback):
        return f"warning: {event.message}"
    return None


class PlainDisplay:
    """One line per finished step, candidate and ranking, for logs and pipes."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream

    def __call__(self, event: Event) -> None:
        text = plain_line(event)
        if text:
            print(text, file=self.stream or sys.stdout, flush=True)


class JsonDisplay:
    """Every event as one JSON object per line on stdout, and nothing else there."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream

    def __call__(self, event: Event) -> None:
        stream = self.stream or sys.stdout
        stream.write(json_safe(event.to_line()) + "\n")
        stream.flush()
