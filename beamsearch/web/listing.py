"""The list of runs and batches at `GET /`, kept current by reading only what each log gained since the
last look (a run's events.jsonl; a batch's batch.jsonl, and the logs of its ideas still running).

A batch is summarised as `beamsearch list` summarises it: its own log says how each finished idea
ended; an idea the log leaves started is read from its own run folder, which is the truth of it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from beamsearch.batch_store import BATCH_FILE, BatchDocument, BatchStore, is_batch
from beamsearch.web import batchlog, paths, runlog
from beamsearch.web.tail import LogTail

MAX_RUNS = 200  # the newest runs the list shows (a folder of thousands is scanned by name only)


def _stamp(path: Path) -> Any:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


class RunsList:
    """The runs (and batches) directly inside one folder, each folded incrementally."""

    def __init__(self, runs_dir: Path) -> None:
        self.runs_dir = Path(runs_dir)
        self.known: dict[str, tuple[LogTail, runlog.RunFold, Any, dict[str, Any] | None]] = {}
        self.batches: dict[str, BatchFollow] = {}

    def names(self) -> list[str]:
        try:
            entries = [entry.name for entry in self.runs_dir.iterdir()]
        except OSError:
            return []
        names = sorted((n for n in entries if paths.valid_run_name(n)), reverse=True)
        return [n for n in names if runlog.is_run_folder(self.runs_dir / n) or is_batch(self.runs_dir / n)][:MAX_RUNS]

    def entry(self, name: str) -> dict[str, Any]:
        folder = self.runs_dir / name
        if is_batch(folder):
            follow = self.batches.get(name) or BatchFollow(folder)
            self.batches[name] = follow
            return follow.entry()
        stamp = _stamp(folder / runlog.RUN_FILE)
        tail, fold, seen, document = self.known.get(name) or (LogTail(runlog.events_path(folder)), runlog.RunFold(), None, None)
        if stamp != seen:
            document = runlog.read_run_file(folder)
        for line in tail.new_lines():
            if line.event is not None:
                fold.add(line.event)
        self.known[name] = (tail, fold, stamp, document)
        return {"kind": "run", **runlog.run_entry(folder, fold, document)}

    def forget(self, keep: set[str]) -> None:
        for gone in set(self.known) - keep:
            del self.known[gone]
        for gone in set(self.batches) - keep:
            del self.batches[gone]

    def snapshot(self) -> dict[str, Any]:
        names = self.names()
        self.forget(set(names))
        problem = None if self.runs_dir.is_dir() else "the folder does not exist yet"
        return {"runs_dir": str(self.runs_dir), "problem": problem, "runs": [self.entry(n) for n in names]}


class BatchFollow:
    """One batch of the list: its log folded as it grows, its batch.yaml read again only when it changes,
    and the run folders of its ideas that are still going followed like the runs of the list."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.tail = LogTail(batchlog.log_path(self.folder))
        self.view = batchlog.BatchFold()
        self.stamp: Any = None
        self.document: BatchDocument | None = None
        self.problem = ""
        self.ideas = RunsList(self.folder)  # only `entry` of it: ideas are looked up by the log's names
        self.following: set[str] = set()

    def entry(self) -> dict[str, Any]:
        stamp = _stamp(self.folder / BATCH_FILE)
        if stamp != self.stamp or self.document is None:
            self.stamp = stamp
            self.document, self.problem = batchlog.read_document(self.folder)
        for line in self.tail.new_lines():
            if line.event is not None:
                self.view.add(line.event)
        if self.document is None:
            return batchlog.unreadable_entry(self.folder, self.problem)
        self.following = set()
        summary = batchlog.summarize(self.folder, self.document, self.view, self.from_run)
        self.ideas.forget(self.following)  # an idea that finished is known from the batch log again
        return batchlog.batch_entry(self.folder, self.document, summary)

    def from_run(self, store: BatchStore, row: dict[str, Any]) -> None:
        """An idea the batch log leaves started: its status, spend and best from its own log, read on
        from where the last look stopped. A name that is no folder inside the batch is not followed."""
        folder = paths.run_folder(self.folder, row["run"]) if isinstance(row.get("run"), str) else None
        if folder is None:
            row.update(status="unreadable", reason=f"{batchlog.log_path(self.folder).name} names a run folder "
                                                   "that is not a folder inside the batch")
            return
        self.following.add(folder.name)
        entry = self.ideas.entry(folder.name)
        best = entry["best"] or {}
        row.update(status=entry["status"], reason=entry["reason"], cost_usd=entry["cost_usd"],
                   best_id=best.get("id"), best_total=best.get("total"), best_image=best.get("image"))
