"""The command line of batches: `beamsearch batch FILE`, and the batch side of `resume`, `show`, `report`
and `estimate --batch`. Argument parsing and presentation only; the batch itself is `beamsearch.batch`.

Imported by `cli` (which registers the `batch` command from here), so only typer is imported at the top:
`beamsearch --help` stays quick.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from beamsearch.cli import (
    AlignmentOption,
    AlphaOption,
    ConfigOption,
    IterationsOption,
    MaxCostOption,
    MOption,
    NOption,
    ProviderOption,
    QuietOption,
    RankingOption,
    RunsDirOption,
    SamplesOption,
    SeedOption,
    _example,
    _print_json,
    _resolve,
    app,
    console,
    guarded,
)
from beamsearch.cliapp import naming_flags, settings_flags


def inert(text: Any, limit: int = 200) -> str:
    """Text from an ideas file, a model or a folder, safe for a terminal: no control characters, bounded."""
    cleaned = "".join(c if c.isprintable() else " " for c in str(text))
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 3] + "..."


class BatchLines:
    """One plain line per idea started and finished, and per batch session, on stderr (stdout keeps
    the result, or the JSON events with --json)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.finished = 0

    def __call__(self, event: Any) -> None:
        line = self.line(event)
        if line:
            typer.echo(line, err=True)

    def line(self, event: Any) -> str | None:
        kind = getattr(event, "type", None)
        if kind == "batch_started":
            again = f" (resumed; ${event.spent_usd:.4f} spent before)" if event.resumed else ""
            return f"batch started: {event.ideas} ideas, up to {event.concurrency} at a time{again}"
        if kind == "idea_started":
            return f"idea {event.idea} {'resumed' if event.resumed else 'started'} in {inert(event.run)}"
        if kind == "idea_finished":
            self.finished += 1
            best = f"best {event.best_total:.1f}, " if event.best_total is not None else ""
            why = f": {inert(event.reason)}" if event.status != "done" and event.reason else ""
            return (f"idea {event.idea} {event.status}{why} ({best}${event.cost_usd:.4f}; "
                    f"{self.finished} finished this session)")
        if kind == "batch_finished":
            return (f"batch {event.status}: {event.done} done, {event.failed} failed, {event.stopped} stopped, "
                    f"{event.not_started} not started; spent ${event.cost_usd:.4f}")
        return None


class Stopping:
    """Ctrl-C: say once, at the first idea that logs its stop, what is happening."""

    said = False

    def __call__(self, event: Any) -> None:
        if not self.said and getattr(event, "reason", None) == "interrupted by the user":
            self.said = True
            typer.echo("\nStopping: calls in flight cancelled, every idea logs its stop (Ctrl-C again to quit at "
                       "once)...", err=True)


async def session(opened: Any, listeners: list[Any], serve: str | None) -> Any:
    """The batch's session, and with `serve` ("HOST:PORT") the web view of its runs folder in this same
    loop. Pages follow the batch's and its ideas' logs as `beamsearch serve` beside it would: there is no
    live bus, which follows one run at a time, and a batch runs several at once."""
    from beamsearch.batch import run_batch

    if serve is None:
        return await run_batch(opened, listeners)
    from beamsearch.serve import serving

    host, _, port = serve.rpartition(":")
    async with serving(opened.store.path.parent, host or "127.0.0.1", int(port)) as server:
        typer.echo(f"Watch it live at {server.run_url(opened.store.path.name)}", err=True)
        return await run_batch(opened, listeners)


def drive(opened: Any, json_mode: bool, quiet: bool, serve: str | None = None) -> None:
    """Run one session of the batch, then print where it stands. Ctrl-C is asyncio.run's own, as for a
    run: the first cancels every idea (each logs a resumable stop), a second interrupts at once."""
    import asyncio

    from beamsearch import display

    listeners: list[Any] = [Stopping()]
    if json_mode:
        listeners.append(display.JsonDisplay())
    elif not quiet:
        listeners.append(BatchLines(len(opened.document.ideas)))
    path = opened.store.path
    try:
        result = asyncio.run(session(opened, listeners, serve))
    except KeyboardInterrupt:
        _print_summary(path, json_mode, 130)
        typer.echo("Interrupted.", err=True)
        typer.echo(f"Resume with: beamsearch resume {path}", err=True)
        raise typer.Exit(130) from None
    for warning in result.warnings:
        typer.echo(f"Warning: {inert(warning, 400)}", err=True)
    _print_summary(path, json_mode, result.exit_code, result.summary)
    if result.exit_code != 0:
        typer.echo(f"Error: the batch {result.status}: {result.summary.get('reason')}.", err=True)
        typer.echo(f"Resume with: beamsearch resume {path}", err=True)
        raise typer.Exit(result.exit_code)


def _print_summary(path: Path, json_mode: bool, code: int, summary: dict[str, Any] | None = None) -> None:
    from beamsearch.batch_index import show_batch

    try:
        summary = summary or show_batch(path)
    except Exception:  # a second Ctrl-C may have cut a log short: the resume line is what matters
        return
    if json_mode:  # the last line of the stream: one JSON object, like every event before it
        from beamsearch.batch_events import BatchResult
        from beamsearch.terminal import json_safe

        result = BatchResult(batch_dir=str(path), exit_code=code,
                             **{k: summary[k] for k in ("status", "reason", "counts", "cost_usd")})
        typer.echo(json_safe(result.to_line()))
    else:
        print_batch(summary)


def batch_table(summary: dict[str, Any]) -> Any:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    counts = ", ".join(f"{v} {k}" for k, v in summary["counts"].items() if v)
    table = Table()
    for column in ("idea", "status", "best", "cost", "prompt / folder"):
        table.add_column(column, justify="right" if column in ("idea", "best", "cost") else "left",
                         overflow="fold")
    styles = {"done": "green", "running": "cyan", "stopped": "yellow", "failed": "red", "unreadable": "red"}
    for row in summary["rows"]:
        best = "-" if row["best_total"] is None else f"{row['best_total']:.1f}"
        status = str(row["status"])
        detail = inert(row["prompt"]) + (f"\n{inert(row['run'])}" if row["run"] else "")
        if row["reason"] and status != "done":
            detail += f"\n{inert(row['reason'], 300)}"
        table.add_row(str(row["idea"]), Text(status, style=styles.get(status, "")), best,
                      f"${float(row['cost_usd'] or 0):.4f}", Text(detail))
    head = Text(f"Batch {inert(summary['source'])}: {summary['ideas']} ideas ({counts}), spent "
                f"${summary['cost_usd']:.4f}; {summary['status']}", style="bold")
    return Group(head, table)


def print_batch(summary: dict[str, Any]) -> None:
    """The table, then the folder on a line of its own (never folded, so it can be copied)."""
    console().print(batch_table(summary))
    typer.echo(f"batch folder: {inert(summary['batch_dir'], 1000)} (index.html: every idea's best image)")


@app.command("batch", epilog=_example("beamsearch batch configs/batch-example.txt --provider sim",
                                      "beamsearch batch ideas.yaml --max-cost 20 --concurrency-ideas 4"))
@guarded
def batch(
    file: Annotated[Path, typer.Argument(help="Ideas: a text file (one a line, # comments) or a YAML/JSON list.")],
    config: ConfigOption = None,
    n: NOption = None,
    m: MOption = None,
    iterations: IterationsOption = None,
    alpha: AlphaOption = None,
    provider: ProviderOption = None,
    runs_dir: RunsDirOption = None,
    max_cost: MaxCostOption = None,
    seed: SeedOption = None,
    alignment: AlignmentOption = None,
    ranking: RankingOption = None,
    judge_samples: SamplesOption = None,
    concurrency_ideas: Annotated[int | None, typer.Option("--concurrency-ideas", min=1, help="Ideas run at once (default: enough to keep the busiest service full).")] = None,
    json_mode: Annotated[bool, typer.Option("--json", help="Write one JSON event of the batch per line to stdout.")] = False,
    quiet: QuietOption = False,
    serve: Annotated[bool, typer.Option("--serve", help="Also serve the live web view of this batch (see serve).")] = False,
    host: Annotated[str, typer.Option("--host", help="With --serve: the address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="With --serve: the port (0: any free one).")] = 8765,
) -> None:
    """One search per idea of FILE, in one batch folder, sharing one set of limits and one budget."""
    settings = _resolve(config, settings_flags(locals()))  # first, while the locals are the options
    from beamsearch.batch_open import open_new_batch
    from beamsearch.cli_session import _serve_address

    drive(open_new_batch(file, settings, concurrency_ideas), json_mode, quiet, _serve_address(serve, host, port))


def resume(path: Path, iterations: int | None, max_cost: str | None, config: Path | None, json_mode: bool,
           quiet: bool, serve: str | None = None) -> None:
    """`beamsearch resume BATCH_DIR`: every idea not done resumes (or starts); nothing recorded is paid twice."""
    from beamsearch.batch_open import open_batch_for_resume
    from beamsearch.errors import RunFolderError

    flags = settings_flags({"iterations": iterations, "max_cost": max_cost})
    with naming_flags(flags):
        opened = open_batch_for_resume(path, config, flags)
    if not opened.todo:
        opened.store.close()
        raise RunFolderError(f"Every idea of this batch is done ({len(opened.document.ideas)}); pass --iterations "
                             "with more than they ran to extend them.")
    drive(opened, json_mode, quiet, serve)


def show(path: Path, json_mode: bool) -> None:
    from beamsearch.batch_index import show_batch

    summary = show_batch(path)
    if json_mode:
        _print_json(summary)
    else:
        print_batch(summary)


def report(path: Path) -> None:
    from beamsearch.batch_index import rebuild

    typer.echo(str(rebuild(path)))


def estimate(file: Path, settings: Any, concurrency: int | None, json_mode: bool) -> None:
    """`beamsearch estimate --batch FILE`: the whole batch's calls, cost range and time bound."""
    from beamsearch.batch_estimate import estimate_batch, ideas_at_once
    from beamsearch.batch_file import checked_settings, read_ideas
    from beamsearch.batch_open import shared_settings

    shared = shared_settings(settings)
    ideas = checked_settings(shared, read_ideas(file), Path(file).name)
    data = estimate_batch(shared, ideas, concurrency or ideas_at_once(shared, ideas))
    if json_mode:
        _print_json(data)
        return
    from rich.table import Table

    table = Table()
    for column in ("service", "calls"):
        table.add_column(column, justify="left" if column == "service" else "right")
    for service, count in data["calls"]["by_service"].items():
        table.add_row(service, str(count))
    table.add_row("total", str(data["calls"]["total"]), style="bold")
    out = console()
    out.print(f"Batch of {data['ideas']} ideas, up to {data['concurrency_ideas']} at a time", markup=False, style="bold")
    out.print(table)
    cost, time_data = data["cost"], data["time"]
    out.print(f"cost: ${cost['low_usd']:.4f} to ${cost['high_usd']:.4f}", markup=False)
    out.print(f"time lower bound: {_duration(time_data['seconds'])} (bound by {time_data['bound_by']})", markup=False)
    for name, seconds in time_data["bounds"].items():
        out.print(f"  {name}: {_duration(seconds)}", markup=False, style="dim")
    for note in data["notes"]:
        out.print(note, markup=False, style="dim")


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f}s"
    minutes = round(seconds / 60)
    return f"{minutes}m" if minutes < 60 else f"{minutes // 60}h {minutes % 60:02d}m"
