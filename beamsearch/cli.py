"""The command line: argument parsing and presentation only. Every behaviour lives in `app` and below;
how the program handles errors, help and `--debug` lives in `cliapp`.

Heavy modules (the engine, Pillow, the OpenAI SDK, pydantic) are imported inside the commands, so that
`beamsearch --help` answers at once.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from beamsearch import __version__
from beamsearch.choices import AlignmentMethod, ProviderName, RankingMethod
from beamsearch.cli_session import _drive, _serve_address, console
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
    """Continue a stopped run or batch (or extend a finished one): recorded steps are replayed, never paid twice."""
    if _is_batch(run_dir):
        return batch_cli.resume(run_dir, iterations, max_cost, config, json_mode, quiet, _serve_address(serve, host, port))
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
    """(Re)build the run's self-contained report.html from its event log (a batch: its index.html)."""
    if _is_batch(run_dir):
        return batch_cli.report(run_dir)
    from beamsearch.report import write_report
    from beamsearch.runs import open_run, summarize

    store, _ = open_run(run_dir)
    typer.echo(line(write_report(store, summarize(run_dir))))


def _is_batch(path: Path) -> bool:
    from beamsearch.batch_store import is_batch

    return is_batch(path)


from beamsearch import batch_cli, cli_estimate, cli_serve  # noqa: E402,F401 - register `batch`, `estimate` and `serve` on the app


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("Interrupted.", err=True)
        sys.exit(130)
