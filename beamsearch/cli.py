"""The command line: argument parsing and presentation only. Every behaviour lives in `app` and below.

Heavy modules (the engine, Pillow, the OpenAI SDK) are imported inside the commands, so that
`beamsearch --help` answers at once.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    name="beamsearch",
    help="Search for the best image for an idea: beam search over WHAT (content) and HOW (style) prompts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_state = {"debug": False}


@app.callback()
def _root(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False) -> None:
    _state["debug"] = debug


def fail(exc: BaseException, code: int | None = None) -> None:
    """Print one clear sentence (a traceback only with --debug) and exit with the error's code. Anything
    that is not a BeamsearchError is a bug, and is called one."""
    from beamsearch.errors import BeamsearchError

    if _state["debug"]:
        import traceback

        traceback.print_exception(exc)
    if isinstance(exc, BeamsearchError):
        message = exc.message
    else:
        detail = " ".join(str(exc).split())
        message = f"internal error: {type(exc).__name__}{': ' + detail if detail else ''}"
        if not _state["debug"]:
            message += " (run with --debug for the traceback)"
    typer.echo(f"Error: {message}", err=True)
    raise typer.Exit(code if code is not None else getattr(exc, "exit_code", 1))


def guarded(command: Callable[..., Any]) -> Callable[..., Any]:
    """The safety net of every command: any exception that escapes it becomes one line and exit code 1
    (or the error's own code); typer's and click's own exits pass, and so does Ctrl-C (see `main`)."""
    from typer.exceptions import Abort, Exit, TyperException

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (Exit, Abort, TyperException):
            raise
        except Exception as exc:
            fail(exc)

    return wrapper


def console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, no_color=bool(os.environ.get("NO_COLOR")) or None)


# options shared by `run` and `estimate` (and `--config` by most commands)
ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", help="A YAML settings file.")]
NOption = Annotated[int | None, typer.Option("-n", help="Beam width: candidates per iteration.")]
MOption = Annotated[int | None, typer.Option("-m", help="Survivors kept after each ranking.")]
IterationsOption = Annotated[int | None, typer.Option("--iterations", "-i", help="Iterations, counting iteration 0.")]
AlphaOption = Annotated[float | None, typer.Option("--alpha", help="Weight of alignment in the total score (0-1).")]
ProviderOption = Annotated[str | None, typer.Option("--provider", help="openai or sim (offline simulator).")]
RunsDirOption = Annotated[Path | None, typer.Option("--runs-dir", help="Where run folders are made.")]
MaxCostOption = Annotated[float | None, typer.Option("--max-cost", help="Stop before spending more dollars than this.")]
SeedOption = Annotated[int | None, typer.Option("--seed", help="Seed of the run (the simulator is deterministic from it).")]

# judging options, shared by `run` and `estimate`
AlignmentOption = Annotated[str | None, typer.Option("--alignment", help="How alignment is judged: rating (0-100) or checklist (yes/no questions).")]
RankingOption = Annotated[str | None, typer.Option("--ranking", help="How survivors are chosen: scores, or pairwise (finalists compared in both orders).")]
SamplesOption = Annotated[int | None, typer.Option("--judge-samples", help="Independent judge answers per image, averaged.")]


def _flags(**values: Any) -> dict[str, Any]:
    """A command's options as settings keys; options that are not settings (config, json_mode, quiet)
    and options not given are left out."""
    mapping = {"n": "n", "m": "m", "iterations": "iterations", "alpha": "alpha", "provider": "provider",
               "runs_dir": "runs_dir", "max_cost": "max_cost_usd", "seed": "seed", "prompt": "prompt",
               "alignment": "alignment", "ranking": "ranking", "judge_samples": "judge_samples"}
    return {mapping[k]: v for k, v in values.items() if k in mapping and v is not None}


def _resolve(config: Path | None, flags: dict[str, Any]) -> Any:
    from beamsearch.precedence import resolve

    return resolve(config, flags)


def _stopping_notice(event: Any) -> None:
    """Ctrl-C (asyncio.run cancels the run, which logs a resumable stop): say what is happening."""
    if getattr(event, "type", None) == "stopping":
        typer.echo("\nStopping: calls in flight cancelled, saving the log (Ctrl-C again to quit at once)...", err=True)


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
        live = display.LiveDisplay(console(), settings.m, label, settings.iterations, settings.max_cost_usd)
        return [*listeners, live], live
    return [*listeners, display.PlainDisplay()], None


def _finish(result: Any, json_mode: bool) -> None:
    from beamsearch import display

    run_dir = str(result.store.path)
    for warning in result.warnings:
        typer.echo(f"Warning: {warning}", err=True)
    if json_mode:
        display.JsonDisplay()(display.result_event(result.summary, run_dir, result.exit_code))
    else:
        console().print(display.result_table(result.summary, run_dir))
    if result.error is not None:
        typer.echo(f"Error: {result.error.message}", err=True)
        if result.status in ("stopped", "failed"):
            typer.echo(f"Resume with: beamsearch resume {run_dir}", err=True)
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
    typer.echo(f"Resume with: beamsearch resume {run_dir}", err=True)
    raise typer.Exit(Interrupted.exit_code)


def _drive(opened: Any, json_mode: bool, quiet: bool) -> None:
    """Run one session of `opened` under the right display, then print the result. Ctrl-C is asyncio.run's
    own: the first cancels the run (which logs a resumable stop and ends as KeyboardInterrupt here), a
    second one interrupts at once."""
    import asyncio

    from beamsearch import app as application

    listeners, live = _listeners(opened.settings, json_mode, quiet)
    try:
        with live if live is not None else contextlib.nullcontext():
            result = asyncio.run(application.run_opened(opened, listeners))
    except KeyboardInterrupt:
        _interrupted(opened.store.path, json_mode)
    _finish(result, json_mode)


@app.command()
@guarded
def run(
    prompt: Annotated[str | None, typer.Option("--prompt", "-p", help="Your idea, in your own words.")] = None,
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
    json_mode: Annotated[bool, typer.Option("--json", help="Write one JSON event per line to stdout.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the result.")] = False,
) -> None:
    """Run a new search and write a run folder."""
    settings = _resolve(config, _flags(**locals()))  # first, while the locals are the options
    from beamsearch import app as application

    _drive(application.open_new_run(settings), json_mode, quiet)


@app.command()
@guarded
def resume(
    run_dir: Annotated[Path, typer.Argument(help="The run folder to resume.")],
    iterations: Annotated[int | None, typer.Option("--iterations", "-i", help="Extend the run to this many iterations.")] = None,
    max_cost: Annotated[float | None, typer.Option("--max-cost", help="A new budget in dollars (the total, spent included).")] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="A YAML file of settings that shape the future (limits, timeouts).")] = None,
    json_mode: Annotated[bool, typer.Option("--json", help="Write one JSON event per line to stdout.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the result.")] = False,
) -> None:
    """Continue a stopped run or batch (or extend a finished one): recorded steps are replayed, never paid twice."""
    if _is_batch(run_dir):
        return batch_cli.resume(run_dir, iterations, max_cost, config, json_mode, quiet)
    from beamsearch import app as application

    # opened (and locked) once, before any display, so that every refusal is a clear sentence
    opened = application.open_for_resume(run_dir, config, _flags(iterations=iterations, max_cost=max_cost))
    try:
        _check_resumable(run_dir, opened.settings)
    except BaseException:
        opened.store.unlock()
        raise
    _drive(opened, json_mode, quiet)


def _check_resumable(run_dir: Path, settings: Any) -> None:
    """What a resume needs that only a new run could change, with advice that resume can follow (it
    takes no --prompt and cannot switch a run to the simulator)."""
    from beamsearch.errors import RunFolderError, SettingsError

    if not settings.prompt:
        raise RunFolderError(f"{run_dir} was saved without a prompt, so it cannot be resumed; "
                             "start a new run with beamsearch run --prompt \"your idea\".")
    from beamsearch.roles import ROLES

    for role in ROLES:
        env = getattr(settings, role).api_key_env
        if settings.role_provider(role) != "sim" and not os.environ.get(env, "").strip():
            raise SettingsError(f"Resuming this run needs an API key for its {role} role in the environment variable "
                                f"{env}, which is not set; set it and resume again (a run keeps its provider).")


@app.command("config")
@guarded
def show_config(
    config: ConfigOption = None,
) -> None:
    """Print the resolved settings as YAML (defaults < file < environment). Secrets are never settings."""
    from beamsearch.precedence import to_yaml

    typer.echo(to_yaml(_resolve(config, {})), nl=False)


def _print_json(data: Any) -> None:
    import json

    typer.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


@app.command("show")
@guarded
def show_run(
    run_dir: Annotated[Path, typer.Argument(help="The run folder.")],
    json_mode: Annotated[bool, typer.Option("--json", help="Print the data as one JSON document.")] = False,
) -> None:
    """Summary, the best candidate, its family tree back to iteration 0 and the cost by service (a batch: each idea)."""
    if _is_batch(run_dir):
        return batch_cli.show(run_dir, json_mode)
    from beamsearch import display
    from beamsearch.runs import show_data

    data = show_data(run_dir)
    if json_mode:
        _print_json(data)
    else:
        console().print(display.show_view(data))


@app.command("list")
@guarded
def list_runs(
    runs_dir: Annotated[Path | None, typer.Argument(help="The folder that holds the runs (default: runs_dir of the settings).")] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="A YAML settings file (for its runs_dir).")] = None,
    json_mode: Annotated[bool, typer.Option("--json", help="Print the runs as one JSON document.")] = False,
) -> None:
    """Every run with its status (running, done, stopped, failed), prompt, best score, cost and date; newest first."""
    from beamsearch import display
    from beamsearch.runs import list_runs as find_runs

    runs = find_runs(runs_dir if runs_dir is not None else _resolve(config, {}).runs_dir)
    if json_mode:
        _print_json([run.to_dict() for run in runs])
    elif not runs:
        typer.echo("No runs yet.")
    else:
        console().print(display.runs_table(runs))


@app.command("report")
@guarded
def report(
    run_dir: Annotated[Path, typer.Argument(help="The run folder.")],
) -> None:
    """(Re)build the run's self-contained report.html from its event log (a batch: its index.html)."""
    if _is_batch(run_dir):
        return batch_cli.report(run_dir)
    from beamsearch.report import write_report
    from beamsearch.runs import open_run, summarize

    store, _ = open_run(run_dir)
    typer.echo(str(write_report(store, summarize(run_dir))))


@app.command("estimate")
@guarded
def estimate(
    prompt: Annotated[str | None, typer.Option("--prompt", "-p", help="Your idea (not needed to estimate).")] = None,
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
    json_mode: Annotated[bool, typer.Option("--json", help="Print the estimate as one JSON document.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Accepted for symmetry with run; changes nothing.")] = False,
    batch: Annotated[Path | None, typer.Option("--batch", help="Estimate a batch: every idea of this file, sharing the limits.")] = None,
) -> None:
    """Calls per service, a cost range and a time lower bound for a run with these options. Calls nothing."""
    settings = _resolve(config, _flags(**locals()))  # first, while the locals are the options
    if batch is not None:
        return batch_cli.estimate(batch, settings, None, json_mode)
    from beamsearch import display
    from beamsearch.estimate import estimate as plan

    data = plan(settings).to_dict()
    if json_mode:
        _print_json(data)
    else:
        console().print(display.estimate_view(data, settings))


def _is_batch(path: Path) -> bool:
    from beamsearch.batch_store import is_batch

    return is_batch(path)


from beamsearch import batch_cli  # noqa: E402 - registers `batch`; it builds on the options above


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("Interrupted.", err=True)
        sys.exit(130)
