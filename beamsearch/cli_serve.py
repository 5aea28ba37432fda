"""`beamsearch serve`: the live web view of a runs folder, in a process of its own (the same view runs
inside a run's own process with `run --serve`). The web stack is imported only when it is used."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from beamsearch.cli import _example, _resolve, app, guarded


@app.command("serve", epilog=_example("beamsearch serve", "beamsearch serve runs --port 8080 --open",
                                             "beamsearch run --provider sim -p \"a teal whale\" --serve"))
@guarded
def serve(
    runs_dir: Annotated[Path | None, typer.Argument(help="The folder that holds the runs (default: runs_dir of the settings), or one run or batch folder to open.")] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on; 127.0.0.1 keeps the view on this machine.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to listen on (0: any free port).")] = 8765,
    open_page: Annotated[bool, typer.Option("--open", help="Open the page in the default browser.")] = False,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="A YAML settings file (for its runs_dir).")] = None,
) -> None:
    """A live, read-only web view of your runs (images as they land, scores, rankings). Ctrl-C stops it."""
    import asyncio

    from beamsearch.errors import SettingsError
    from beamsearch.serve import serve_forever

    folder = runs_dir if runs_dir is not None else _resolve(config, {}).runs_dir
    if runs_dir is not None and not runs_dir.is_dir():
        raise SettingsError(f"{runs_dir} is not a folder; give the folder that holds your runs (default: runs).")
    asyncio.run(serve_forever(Path(folder), host, port, open_page, lambda line: typer.echo(line, err=True)))
