"""Everything the web view knows about batch folders, in one place (as `runlog` is for run folders).

A batch page follows the batch's own log, `batch.jsonl`, line by line as a run page follows a run's
events.jsonl, and folds it in the page; its `meta` is what the log does not say (the ideas and their
prompts, from batch.yaml, and whether a process is running the batch). The list of runs folds the
same log with the core's own fold (`batch_events.BatchView`) and summarises it with the core's own
`batch_index.batch_summary`, so it says what `beamsearch list` says.

A batch folder is untrusted data: batch.yaml is checked as `resume` checks it, and a run folder the log
names is only ever looked up through `paths` (directly inside the batch folder, or nothing).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from beamsearch.batch_events import BatchView, batch_event_from_data
from beamsearch.batch_index import batch_summary
from beamsearch.batch_store import BATCH_FILE, BATCH_LOG, BatchDocument, BatchStore
from beamsearch.errors import BeamsearchError
from beamsearch.runs import is_locked

MAX_BATCH_FILE = 64 << 20  # a batch.yaml bigger than this is not one beamsearch wrote
BATCH_STARTED = "batch_started"  # a session of the batch begins: its status is sent again


def log_path(batch_dir: Path) -> Path:
    return Path(batch_dir) / BATCH_LOG


def read_document(batch_dir: Path) -> tuple[BatchDocument | None, str]:
    """batch.yaml, checked, or None and why not (in one sentence)."""
    where = Path(batch_dir) / BATCH_FILE
    try:
        if where.stat().st_size > MAX_BATCH_FILE:
            return None, f"its {BATCH_FILE} is larger than {MAX_BATCH_FILE >> 20} MiB"
        return BatchStore(Path(batch_dir)).read_document(), ""
    except OSError:
        return None, f"its {BATCH_FILE} cannot be read"
    except BeamsearchError as exc:
        return None, exc.message.replace(f"{batch_dir}/", "")


def _budget(settings: dict[str, Any]) -> float | None:
    value = settings.get("max_cost_usd")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def batch_meta(batch_dir: Path, live: bool = False) -> dict[str, Any]:
    """What a batch page needs besides the log: the ideas (number and prompt, in file order), where they
    came from, the budget, and whether a process is running the batch now."""
    document, problem = read_document(batch_dir)
    settings = document.settings if document is not None else {}
    return {
        "name": Path(batch_dir).name,
        "kind": "batch",
        "problem": problem or None,
        "source": document.source if document is not None else "",
        "created": document.created if document is not None else "",
        "version": document.version if document is not None else "",
        "ideas": [{"idea": idea.number, "prompt": idea.prompt} for idea in (document.ideas if document else [])],
        "max_cost_usd": _budget(settings),
        "simulated": settings.get("provider") == "sim",
        "running": is_locked(Path(batch_dir)),
        "live": live,
        "now": round(time.time(), 3),
    }


class BatchFold(BatchView):
    """The list's view of one batch: the core's fold, fed the log's lines one at a time (a line that is
    not a valid batch event is passed over here; the batch page names it)."""

    def add(self, event: dict[str, Any]) -> None:
        try:
            self.apply(batch_event_from_data(event))
        except ValueError:  # NotJson too
            return


def batch_entry(batch_dir: Path, document: BatchDocument, summary: dict[str, Any]) -> dict[str, Any]:
    """One batch of the list of runs, as the index page shows it beside the runs."""
    rows = [r for r in summary["rows"] if isinstance(r.get("best_total"), int | float)]
    best = max(rows, key=lambda r: r["best_total"], default=None)
    counts = summary["counts"]
    return {
        "kind": "batch",
        "name": Path(batch_dir).name,
        "status": summary["status"],
        "reason": summary["reason"],
        "prompt": f"batch of {summary['ideas']} ideas from {document.source}",
        "created": document.created,
        "ideas": summary["ideas"],
        "ideas_done": counts["done"],
        "counts": {k: v for k, v in counts.items() if v},
        "cost_usd": summary["cost_usd"],
        "max_cost_usd": _budget(document.settings),
        "simulated": document.settings.get("provider") == "sim",
        "best": None if best is None else {"idea": best["idea"], "run": best["run"], "total": best["best_total"],
                                           "image": best["best_image"] if isinstance(best["best_image"], str) else None},
    }


def unreadable_entry(batch_dir: Path, problem: str) -> dict[str, Any]:
    return {"kind": "batch", "name": Path(batch_dir).name, "status": "unreadable", "reason": problem, "prompt": "",
            "created": None, "ideas": None, "ideas_done": None, "counts": {}, "cost_usd": 0.0, "max_cost_usd": None,
            "simulated": False, "best": None}


def summarize(batch_dir: Path, document: BatchDocument, view: BatchView, from_run: Any) -> dict[str, Any]:
    """The core's summary of a batch (live if a process holds its lock), reading ideas' runs via `from_run`."""
    return batch_summary(BatchStore(Path(batch_dir)), document, view, live=is_locked(Path(batch_dir)),
                         from_run=from_run)
