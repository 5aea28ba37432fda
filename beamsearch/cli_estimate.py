"""`beamsearch estimate`: calls per service, a cost range and a time lower bound for a run with these
options, at latencies from the settings, an earlier run's log (`--run`) or matching runs in runs_dir
(see `beamsearch.latency`). Calls nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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
from beamsearch.cliapp import settings_flags


@app.command("estimate", epilog=_example("beamsearch estimate -n 9 -m 3 --iterations 4 --ranking pairwise",
                                         "beamsearch estimate --config configs/local.yaml --run runs/20261121-143002-a-boat"))
@guarded
def estimate(
    prompt: Annotated[str | None, typer.Option("--prompt", "-p", metavar="TEXT", help="Your idea (not needed to estimate).")] = None,
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
    run: Annotated[Path | None, typer.Option("--run", metavar="RUN_DIR", help="A run whose log gives the latency "
                                             "per call of each service (median elapsed of its steps).")] = None,
    json_mode: Annotated[bool, typer.Option("--json", help="Print the estimate as one JSON document.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Accepted for symmetry with run; changes nothing.")] = False,
    batch: Annotated[Path | None, typer.Option("--batch", help="Estimate a batch: every idea of this file, sharing the limits.")] = None,
) -> None:
    """Calls per service, a cost range and a time lower bound for a run with these options. Calls nothing."""
    settings = _resolve(config, settings_flags(locals()))  # first, while the locals are the options
    if batch is not None:
        from beamsearch import batch_cli

        return batch_cli.estimate(batch, settings, None, json_mode)
    from beamsearch import display
    from beamsearch.estimate import estimate as plan

    if run is not None:
        from beamsearch.store import load_run_document

        load_run_document(run)  # a folder that is not a run is one sentence
    data = plan(settings, run).to_dict()
    if json_mode:
        _print_json(data)
    else:
        console().print(display.estimate_view(data, settings))
