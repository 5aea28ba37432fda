"""How one session of a run is driven from the command line: its display, `--serve`, Ctrl-C (asyncio.run's
own), and what is printed when it ends. The commands themselves are in `cli`."""

from __future__ import annotations

import contextlib
import shlex
import sys
from pathlib import Path
from typing import Any

import typer

from beamsearch.terminal import line


def console(stderr: bool = False) -> Any:
    """A rich console for this process's terminal (no colour when NO_COLOR is set)."""
    import os

    from rich.console import Console

    return Console(stderr=stderr, no_color=bool(os.environ.get("NO_COLOR")) or None)


def _stopping_notice(event: Any) -> None:
    """Ctrl-C (asyncio.run cancels the run, which logs a resumable stop): say what is happening."""
    if getattr(event, "type", None) == "stopping":
        typer.echo("\nStopping: calls in flight cancelled, saving the log (Ctrl-C again to quit at once)...", err=True)


def _estimated_seconds(settings: Any) -> list[float] | None:
    """Seconds per iteration by the estimate, for the live view's time left (None if it cannot say)."""
    from beamsearch.estimate import plan_calls, time_lower_bound

    try:
        return [i["seconds"] for i in time_lower_bound(plan_calls(settings), settings)["per_iteration"]]
    except Exception:  # the estimate is a nicety of the view: a run never fails for it
        return None


def _listeners(settings: Any, json_mode: bool, quiet: bool) -> tuple[list[Any], Any]:
    from beamsearch import display

    listeners: list[Any] = [_stopping_notice]
    if json_mode:
        return [*listeners, display.JsonDisplay()], None
    if quiet:
        return listeners, None
    if sys.stdout.isatty():
        label = "provider: " + ("simulator (offline; images and scores are simulated)" if settings.provider == "sim"
                                else "openai-compatible")
        live = display.LiveDisplay(console(), settings.m, label, settings.iterations, settings.budget_usd(),
                                   _estimated_seconds(settings))
        return [*listeners, live], live
    return [*listeners, display.PlainDisplay()], None


def _resume_hint(run_dir: str) -> None:
    typer.echo(f"Resume with: beamsearch resume {line(shlex.quote(run_dir))}", err=True)


def _finish(result: Any, json_mode: bool) -> None:
    from beamsearch import display

    run_dir = str(result.store.path)
    for warning in result.warnings:
        typer.echo(f"Warning: {line(warning)}", err=True)
    if json_mode:
        display.JsonDisplay()(display.result_event(result.summary, run_dir, result.exit_code))
    else:
        console().print(display.result_table(result.summary, run_dir))
    if result.error is not None:
        typer.echo(f"Error: {line(result.error.message)}", err=True)
        if result.status in ("stopped", "failed"):
            _resume_hint(run_dir)
        raise typer.Exit(result.error.exit_code)


def _interrupted(run_dir: Path, json_mode: bool) -> None:
    """After Ctrl-C: the run logged its stop; show where it stands and how to go on, exit 130."""
    from beamsearch import display
    from beamsearch.errors import Interrupted
    from beamsearch.runs import summarize

    try:
        summary = summarize(run_dir)
    except Exception:  # a second Ctrl-C may have cut the log short: the resume line is what matters
        summary = None
    if summary is not None:
        if json_mode:
            display.JsonDisplay()(display.result_event(summary, str(run_dir), Interrupted.exit_code))
        else:
            console().print(display.result_table(summary, str(run_dir)))
    typer.echo("Interrupted.", err=True)
    _resume_hint(str(run_dir))
    raise typer.Exit(Interrupted.exit_code)


async def _session(opened: Any, listeners: list[Any], serve: str | None) -> Any:
    """The session, and with `serve` ("HOST:PORT") the live web view in this same process and loop."""
    from beamsearch import app as application

    if serve is None:
        return await application.run_opened(opened, listeners)
    from beamsearch.serve import LiveBus, serving

    host, _, port = serve.rpartition(":")
    bus = LiveBus()  # attaches itself to the run when the session opens it
    async with serving(opened.store.path.parent, host or "127.0.0.1", int(port), live_bus=bus) as server:
        typer.echo(f"Watch it live at {server.run_url(opened.store.path.name)}", err=True)
        return await application.run_opened(opened, [*listeners, bus])


def _drive(opened: Any, json_mode: bool, quiet: bool, serve: str | None = None) -> None:
    """Run one session of `opened` under the right display, then print the result. Ctrl-C is asyncio.run's
    own: the first cancels the run (which logs a resumable stop and ends as KeyboardInterrupt here), a
    second one interrupts at once."""
    import asyncio

    listeners, live = _listeners(opened.settings, json_mode, quiet)
    try:
        with live if live is not None else contextlib.nullcontext():
            result = asyncio.run(_session(opened, listeners, serve))
    except KeyboardInterrupt:
        _interrupted(opened.store.path, json_mode)
    _finish(result, json_mode)


def _serve_address(serve: bool, host: str, port: int) -> str | None:
    return f"{host}:{port}" if serve else None
