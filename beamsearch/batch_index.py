"""What a batch says about itself: `batch_summary.json`, `index.html` (a grid of every idea's best image
linking to its report), and the data of `list` and `show` for a batch folder.

Derived from `batch.yaml` and the fold of `batch.jsonl` (`batch_events.BatchView`), so they can always be
rebuilt (`beamsearch report BATCH_DIR`). `show` also reads each idea's own run folder, which is the truth
of that idea (an idea may have been resumed on its own since the batch last recorded it); `list` reads
only the batch log and the logs of ideas the log left unfinished, so it stays quick for large batches.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from beamsearch.batch_events import STARTED, BatchView, fold_batch
from beamsearch.batch_store import (
    BATCH_FILE,
    INDEX_FILE,
    SUMMARY_FILE,
    BatchDocument,
    BatchStore,
    idea_folder,
)
from beamsearch.errors import RunFolderError
from beamsearch.report import REPORT_FILE, esc, image_src

COUNTED = ("done", "failed", "stopped", "running", "not started")


def idea_rows(store: BatchStore, document: BatchDocument, view: BatchView, *, live: bool,
              read_runs: str = "unfinished",
              from_run: Callable[[BatchStore, dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """One row per idea, in file order. `live`: the batch is running (an idea started and not finished
    is running, else it was killed and is stopped). `read_runs`: whose run folders to read for their
    true state: "all" (show), "unfinished" (list: only what the batch log cannot tell) or "none".
    `from_run` reads one (the web view's list passes one that reads only what a log gained)."""
    from_run = from_run or _from_run
    rows = []
    for idea in document.ideas:
        state = view.ideas.get(idea.number)
        row: dict[str, Any] = {"idea": idea.number, "line": idea.line, "prompt": idea.prompt,
                               "status": "not started", "reason": "", "run": None, "best_id": None,
                               "best_total": None, "best_image": None, "cost_usd": 0.0, "iterations_done": 0}
        if state is not None:
            row.update(run=state.run, status=state.status, reason=state.reason)
            if state.finished is not None:
                f = state.finished
                row.update(best_id=f.best_id, best_total=f.best_total, best_image=f.best_image, cost_usd=f.cost_usd,
                           iterations_done=f.iterations_done)
            if state.status == STARTED:
                row.update(status="running" if live else "stopped",
                           reason="" if live else "ended without a final record (killed or crashed); resumable")
            if state.run is not None and (read_runs == "all" or read_runs == "unfinished" and state.status == STARTED):
                from_run(store, row)
        rows.append(row)
    return rows


def _from_run(store: BatchStore, row: dict[str, Any]) -> None:
    """Overwrite a row with what the idea's own run folder says (one sentence if it cannot be read)."""
    from beamsearch.runs import summarize

    try:
        summary = summarize(store.run_path(row["run"]))
    except RunFolderError as exc:
        row.update(status="unreadable", reason=exc.message)
        return
    except (OSError, ValueError, KeyError, TypeError) as exc:
        row.update(status="unreadable", reason=f"{type(exc).__name__}: {exc}")
        return
    best = summary.get("best") or {}
    row.update(status=summary.get("status"), reason=summary.get("reason") or "", best_id=best.get("id"),
               best_total=best.get("total"), best_image=best.get("image"), cost_usd=summary.get("cost_usd", 0.0),
               iterations_done=len(summary.get("iterations") or []))


def batch_summary(store: BatchStore, document: BatchDocument, view: BatchView, *, live: bool,
                  read_runs: str = "unfinished",
                  from_run: Callable[[BatchStore, dict[str, Any]], None] | None = None) -> dict[str, Any]:
    rows = idea_rows(store, document, view, live=live, read_runs=read_runs, from_run=from_run)
    counts = {name: sum(1 for r in rows if r["status"] == name) for name in COUNTED}
    counts["other"] = len(rows) - sum(counts.values())
    finish = view.last_finish
    if live:
        status, reason = "running", ""
    elif finish is not None:
        status, reason = finish.status, finish.reason
    else:
        status, reason = "stopped", "ended without a final record (killed or crashed); resumable"
    return {"batch_dir": str(store.path), "source": document.source, "created": document.created,
            "version": document.version, "status": status, "reason": reason, "ideas": len(rows), "counts": counts,
            "cost_usd": round(sum(float(r["cost_usd"] or 0.0) for r in rows), 6), "rows": rows,
            "provider": document.settings.get("provider")}


def write_batch_derived(store: BatchStore, document: BatchDocument, view: BatchView) -> dict[str, Any]:
    """batch_summary.json and index.html, rebuilt from the batch's record (by its own live process)."""
    live = view.last_finish is None
    summary = batch_summary(store, document, view, live=live, read_runs="none")
    store.write_file(SUMMARY_FILE, (json.dumps(summary, indent=2, ensure_ascii=False) + "\n").encode())
    store.write_file(INDEX_FILE, render_index(summary, store.path).encode("utf-8"))
    return summary


def rebuild(path: Path) -> Path:
    """`beamsearch report BATCH_DIR`: rebuild the derived files from every idea's own run folder."""
    from beamsearch.runs import is_locked

    store = BatchStore.open(path)
    document = store.read_document()
    summary = batch_summary(store, document, fold_batch(store.read_events()), live=is_locked(store.path),
                            read_runs="all")
    store.write_file(SUMMARY_FILE, (json.dumps(summary, indent=2, ensure_ascii=False) + "\n").encode())
    return store.write_file(INDEX_FILE, render_index(summary, store.path).encode("utf-8"))


def show_batch(path: Path) -> dict[str, Any]:
    """What `beamsearch show BATCH_DIR` prints: every idea's status, best score, cost and folder (`created` in
    Unix seconds, as every time in `--json`)."""
    from beamsearch.runs import is_locked

    store = BatchStore.open(path)
    document = store.read_document()
    summary = batch_summary(store, document, fold_batch(store.read_events()), live=is_locked(store.path),
                            read_runs="all")
    return {**summary, "created": _created(store.path, document.created)}


def batch_info(path: Path) -> Any:
    """One line of `beamsearch list` for a batch folder (a `runs.RunInfo` that says it is a batch)."""
    from beamsearch.runs import RunInfo, is_locked

    store = BatchStore.open(path)
    document = store.read_document()
    summary = batch_summary(store, document, fold_batch(store.read_events()), live=is_locked(store.path))
    counts = summary["counts"]
    best = max((r["best_total"] for r in summary["rows"] if r["best_total"] is not None), default=None)
    line = (f"batch of {summary['ideas']} ideas ({document.source}): {counts['done']}/{summary['ideas']} done"
            + "".join(f", {counts[k]} {k}" for k in ("running", "stopped", "failed") if counts[k]))
    return RunInfo(path=str(path), name=Path(path).name, status=summary["status"], prompt=line, best_score=best,
                   best_id=None, cost_usd=summary["cost_usd"], created=_created(path, document.created),
                   iterations_done=0, kind="batch", ideas=summary["ideas"], ideas_done=counts["done"])


def _created(path: Path, stamp: str) -> float | None:
    """Unix seconds, as `list` sorts and prints every run's `created` (batch.yaml's stamp, else its mtime)."""
    try:
        return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S%z").timestamp()
    except ValueError:
        pass
    try:
        return round(os.path.getmtime(Path(path) / BATCH_FILE), 3)
    except OSError:
        return None


# --- index.html -------------------------------------------------------------------------------------

CSS = """
body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color:#1d2330; background:#f4f6f9; }
main { max-width:1320px; margin:0 auto; padding:24px; } h1 { font-size:22px; margin:0 0 4px; }
.muted { color:#5f6b7a; } .sim { background:#fff4d6; border:1px solid #e8c66a; padding:6px 10px; border-radius:6px; display:inline-block; }
.grid { display:grid; grid-template-columns:repeat(auto-fill, minmax(220px, 1fr)); gap:14px; margin-top:16px; }
.card { background:#fff; border:1px solid #d9dee5; border-radius:8px; padding:8px; }
.card img { width:100%; aspect-ratio:1/1; object-fit:cover; border-radius:4px; display:block; background:#e9edf2; }
.noimg { aspect-ratio:1/1; display:flex; align-items:center; justify-content:center; background:#eef0f3; color:#5f6b7a;
         border-radius:4px; padding:8px; text-align:center; }
.head { display:flex; justify-content:space-between; align-items:baseline; margin-top:6px; }
.total { font-size:18px; font-weight:700; } .prompt { margin:4px 0; word-break:break-word; }
.done { color:#1f8a4c; } .failed, .unreadable { color:#b3261e; } .stopped, .running, .not-started { color:#c98a00; }
a { color:#2a5bd7; }
"""


def _card(row: dict[str, Any], batch_dir: Path) -> str:
    run = row.get("run")
    try:
        folder: Path | None = idea_folder(batch_dir, run)
    except RunFolderError:  # none yet, or a name in the log that points elsewhere: not linked
        folder = None
    image = image_src(row.get("best_image"), folder) if folder is not None else None
    link = quote(run) + "/" + REPORT_FILE if folder is not None and (folder / REPORT_FILE).is_file() else None
    picture = (f'<img src="{esc(quote(run))}/{image}" alt="best image of idea {row["idea"]}" loading="lazy">'
               if image and run else f'<div class="noimg">{esc(row["status"])}</div>')
    if link:
        picture = f'<a href="{esc(link)}">{picture}</a>'
    total = "–" if row.get("best_total") is None else f"{row['best_total']:.1f}"
    status = str(row.get("status") or "")
    reason = f'<div class="muted">{esc(row["reason"])}</div>' if row.get("reason") and status != "done" else ""
    return (f'<div class="card">{picture}<div class="head"><b>idea {row["idea"]}</b><span class="total">{total}</span>'
            f'</div><div class="prompt">{esc(row["prompt"])}</div><div class="{esc(status.replace(" ", "-"))}">'
            f'{esc(status)} · ${float(row.get("cost_usd") or 0):.4f}</div>{reason}'
            + (f'<div><a href="{esc(link)}">report</a></div>' if link else "") + "</div>")


def render_index(summary: dict[str, Any], batch_dir: Path) -> str:
    """The batch's page: self-contained (inline CSS, no script), links relative to the batch folder,
    every text escaped (ideas and reasons come from users and models)."""
    counts = summary["counts"]
    facts = ", ".join(f"{counts[k]} {k}" for k in COUNTED if counts.get(k))
    simulated = ('<p class="sim">Simulator: images and scores are simulated (offline).</p>'
                 if summary.get("provider") == "sim" else "")
    cards = "\n".join(_card(row, batch_dir) for row in summary["rows"])
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>beamsearch batch: '
            f'{esc(summary["source"])}</title><meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<style>{CSS}</style></head><body><main><h1>Batch of {summary["ideas"]} ideas</h1>'
            f'<div class="muted">{esc(summary["source"])} · {esc(summary["created"])} · {esc(summary["status"])} · '
            f'{esc(facts)} · spent ${summary["cost_usd"]:.4f}</div>{simulated}'
            f'<div class="grid">\n{cards}\n</div></main></body></html>\n')
