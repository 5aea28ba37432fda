"""The command line: argument parsing and presentation only. Every behaviour lives in `app` and below;
how the program handles errors, help and `--debug` lives in `cliapp`.

Heavy modules (the engine, Pillow, the OpenAI SDK, pydantic) are imported inside the commands, so that
`beamsearch --help` answers at once.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from beamsearch import __version__
from beamsearch.choices import AlignmentMethod, ProviderName, RankingMethod
from beamsearch.cliapp import Group, fail, guarded, naming_flags, settings_flags
from beamsearch.terminal import line

__all__ = ["app", "fail", "guarded", "main"]

app = typer.Typer(
    name="beamsearch",
    cls=Group,
    help="Search for the best image for an idea: beam search over WHAT (content) and HOW (style) prompts.",
    epilog="Example: beamsearch run --provider sim --prompt \"a red lighthouse by the sea at night\"",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"beamsearch {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors (anywhere on the command line).")] = False,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.", is_eager=True,
                                          callback=_version)] = False,
) -> None:
    """`--debug` is taken out of the command line before parsing (`cliapp.take_debug`), wherever it is."""


def console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, no_color=bool(os.environ.get("NO_COLOR")) or None)


def _example(*lines: str) -> str:
    return ("Example: " if len(lines) == 1 else "Examples:\n\n") + "\n\n".join(lines)


# options shared by `run` and `estimate` (and `--config` by most commands); settings show their defaults
ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", metavar="FILE", help="A YAML settings file.")]
NOption = Annotated[int | None, typer.Option("-n", metavar="N", help="Beam width: candidates per iteration.")]
MOption = Annotated[int | None, typer.Option("-m", metavar="M", help="Survivors kept after each ranking.")]
IterationsOption = Annotated[int | None, typer.Option("--iterations", "-i", metavar="K", help="Iterations, counting iteration 0.")]
AlphaOption = Annotated[float | None, typer.Option("--alpha", metavar="A", help="Weight of alignment in the total score (0-1).")]
ProviderOption = Annotated[ProviderName | None, typer.Option("--provider", help="Who answers: an OpenAI-compatible endpoint, or the offline simulator.")]
RunsDirOption = Annotated[Path | None, typer.Option("--runs-dir", metavar="DIR", help="Where run folders are made.")]
MaxCostOption = Annotated[str | None, typer.Option("--max-cost", metavar="DOLLARS", help="Stop before spending more dollars than this "
                                                   "(default $2.50 with a paid provider); none lifts the budget.")]
SeedOption = Annotated[int | None, typer.Option("--seed", metavar="SEED", help="Seed of the run (the simulator is deterministic from it).")]
PromptOption = Annotated[str | None, typer.Option("--prompt", "-p", metavar="TEXT", help="Your idea, in your own words.")]

# judging options, shared by `run` and `estimate`
AlignmentOption = Annotated[AlignmentMethod | None, typer.Option("--alignment", help="How alignment is judged: a 0-100 rating, or a checklist of yes/no questions.")]
RankingOption = Annotated[RankingMethod | None, typer.Option("--ranking", help="How survivors are chosen: by scores, or pairwise (finalists compared in both orders).")]
SamplesOption = Annotated[int | None, typer.Option("--judge-samples", metavar="K", help="Independent judge answers per image, averaged.")]

RunDirArgument = Annotated[Path, typer.Argument(metavar="RUN_DIR", help="The run folder.", show_default=False)]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="Print only the result.")]


def _resolve(config: Path | None, flags: dict[str, Any]) -> Any:
    from beamsearch.precedence import resolve

    with naming_flags(flags):
        return resolve(config, flags)


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


@app.command(epilog=_example("beamsearch run --provider sim --prompt \"a teal whale under a purple moon\"",
                                          "beamsearch run -p \"a lighthouse in a storm\" -n 9 -m 3 --iterations 4 --max-cost 2.50"))
@guarded
def run(
    prompt: PromptOption = None,
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
    quiet: QuietOption = False,
    serve: Annotated[bool, typer.Option("--serve", help="Also serve the live web view of this run (see serve).")] = False,
    host: Annotated[str, typer.Option("--host", help="With --serve: the address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="With --serve: the port (0: any free one).")] = 8765,
) -> None:
    """Run a new search and write a run folder."""
    settings = _resolve(config, settings_flags(locals()))  # first, while the locals are the options
    from beamsearch import app as application
    from beamsearch.estimate import range_line

    opened = application.open_new_run(settings)
    if not quiet and (line := range_line(settings)) is not None:
        typer.echo(line, err=True)  # before the first paid call
    _drive(opened, json_mode, quiet, _serve_address(serve, host, port))


@app.command(epilog=_example("beamsearch resume runs/20261121-143002-a-lighthouse-in-a-storm --max-cost 5"))
@guarded
def resume(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="The run folder to resume.", show_default=False)],
    iterations: Annotated[int | None, typer.Option("--iterations", "-i", metavar="K", show_default="as recorded",
                                                   help="Extend the run to this many iterations.")] = None,
    max_cost: Annotated[str | None, typer.Option("--max-cost", metavar="DOLLARS", show_default="as recorded",
                                                 help="A new budget in dollars (the total, spent included); none lifts it.")] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", metavar="FILE",
                                                help="A YAML file of settings that shape the future (limits, timeouts).")] = None,
    json_mode: Annotated[bool, typer.Option("--json", help="Write one JSON event per line to stdout.")] = False,
    quiet: QuietOption = False,
    serve: Annotated[bool, typer.Option("--serve", help="Also serve the live web view of this run (see serve).")] = False,
    host: Annotated[str, typer.Option("--host", help="With --serve: the address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="With --serve: the port (0: any free one).")] = 8765,
    trust_folder_endpoints: Annotated[bool, typer.Option(
        "--trust-folder-endpoints", help="Send calls (with your keys) to the endpoints the run folder names "
        "when they differ from your settings' (by default such a folder is refused).")] = False,
) -> None:
    """Continue a stopped run (or extend a finished one): recorded steps are replayed, never paid twice."""
    from beamsearch import app as application

    # opened (and locked) once, before any display, so that every refusal is a clear sentence
    flags = settings_flags({"iterations": iterations, "max_cost": max_cost})
    with naming_flags(flags):
        opened = application.open_for_resume(run_dir, config, flags, trust_endpoints=trust_folder_endpoints)
    try:
        _check_resumable(run_dir, opened.settings)
    except BaseException:
        opened.store.unlock()
        raise
    for notice in opened.notices:  # where calls and keys go, before the first paid call
        typer.echo(notice, err=True)
    _drive(opened, json_mode, quiet, _serve_address(serve, host, port))


def _check_resumable(run_dir: Path, settings: Any) -> None:
    """What a resume needs that only a new run could change, with advice that resume can follow (it
    takes no --prompt and cannot switch a run to the simulator)."""
    from beamsearch.errors import RunFolderError, SettingsError

    if not settings.prompt:
        raise RunFolderError(f"{run_dir} was saved without a prompt, so it cannot be resumed; "
                             "start a new run with beamsearch run --prompt \"your idea\".")
    from beamsearch.endpoints import MissingKey, role_key
    from beamsearch.roles import ROLES

    for role in ROLES:
        if settings.role_provider(role) == "sim":
            continue
        try:
            role_key(getattr(settings, role))
        except MissingKey as missing:
            raise SettingsError(f"Resuming this run needs an API key for its {role} role in the environment variable "
                                f"{missing}, which is not set; set it and resume again (a run keeps its provider).") from None


@app.command("config", epilog=_example("beamsearch config --config configs/default.yaml"))
@guarded
def show_config(
    config: ConfigOption = None,
) -> None:
    """Print the resolved settings as YAML (defaults < file < environment). Secrets are never settings."""
    from beamsearch.precedence import to_yaml

    typer.echo(to_yaml(_resolve(config, {})), nl=False)


def _print_json(data: Any) -> None:
    import json

    from beamsearch.terminal import json_safe

    typer.echo(json_safe(json.dumps(data, ensure_ascii=False, indent=2, default=str)))


@app.command("show", epilog=_example("beamsearch show runs/20261121-143002-a-lighthouse-in-a-storm --json"))
@guarded
def show_run(
    run_dir: RunDirArgument,
    json_mode: Annotated[bool, typer.Option("--json", help="Print the data as one JSON document.")] = False,
) -> None:
    """Summary, the best candidate, its family tree back to iteration 0 and the cost by service."""
    from beamsearch import display
    from beamsearch.runs import show_data

    data = show_data(run_dir)
    if json_mode:
        _print_json(data)
    else:
        console().print(display.show_view(data))


@app.command("list", epilog=_example("beamsearch list runs --json"))
@guarded
def list_runs(
    runs_dir: Annotated[Path | None, typer.Argument(metavar="RUNS_DIR", help="The folder that holds the runs.")] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", metavar="FILE", help="A YAML settings file (for its runs_dir).")] = None,
    json_mode: Annotated[bool, typer.Option("--json", help="Print the runs as one JSON document.")] = False,
) -> None:
    """Every run with its status (running, done, stopped, failed), prompt, best score, cost and date; newest first."""
    from beamsearch import display
    from beamsearch.runs import list_runs as find_runs

    folder = runs_dir if runs_dir is not None else _resolve(config, {}).runs_dir
    runs = find_runs(folder)
    if json_mode:
        _print_json([run.to_dict() for run in runs])
    elif not runs:
        typer.echo(f"No runs yet in {line(folder)}; start one with: beamsearch run --prompt \"your idea\"")
    else:
        console().print(display.runs_table(runs))


@app.command("report", epilog=_example("beamsearch report runs/20261121-143002-a-lighthouse-in-a-storm"))
@guarded
def report(
    run_dir: RunDirArgument,
) -> None:
    """(Re)build the run's self-contained report.html from its event log."""
    from beamsearch.report import write_report
    from beamsearch.runs import open_run, summarize

    store, _ = open_run(run_dir)
    typer.echo(line(write_report(store, summarize(run_dir))))


from beamsearch import cli_estimate, cli_serve  # noqa: E402,F401 - register `estimate` and `serve` on the app


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("Interrupted.", err=True)
        sys.exit(130)
