"""Looking at run folders from outside: their status, the list of runs, and what `show` prints.

Everything here only reads. A run may be in progress in another process, so the event log is read
without touching it (the store's own reader trims a torn last line, which is right when resuming and
wrong while someone else is still writing it).
"""

from __future__ import annotations

import os
import shlex
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from beamsearch.batch_store import is_batch
from beamsearch.errors import RunFolderError
from beamsearch.eventlog import read_log
from beamsearch.files import outside_reason, reason, shown
from beamsearch.schedule import refined_of
from beamsearch.store import LOCK_FILE, RUN_FILE, RunStore, load_run_document
from beamsearch.summary import build_summary
from beamsearch.view import RunView, fold

STATUSES = ("running", "done", "stopped", "failed")


def read_view(path: Path) -> RunView:
    """The fold of a run's log, read without touching it: a last line still being written (or torn) is
    skipped, never cut; anything else that is not a valid event is the same clear error `resume` gives."""
    return fold(read_log(Path(path)).events)


def is_locked(path: Path) -> bool:
    """True while a live process holds the run's lock (the kernel drops a flock when its process dies)."""
    import fcntl

    lock = Path(path) / LOCK_FILE
    if outside_reason(Path(path), LOCK_FILE) is not None:  # a symlink out of the folder is no one's lock
        return False
    try:
        handle = open(lock, encoding="utf-8")  # noqa: SIM115 - closed below; reading never creates the file
    except OSError:
        return False
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return False
    finally:
        handle.close()


def status_of(path: Path, view: RunView) -> tuple[str, str]:
    """(status, reason): running if a live process holds the lock; else what the last session's
    `run_finished` says; a session that ended without one (killed, crashed) left the run stopped."""
    if is_locked(path):
        return "running", ""
    last = view.last_finish
    if last is None:
        return "stopped", "ended without a final record (killed or crashed); resumable"
    return (last.status if last.status in STATUSES else "failed"), last.reason


def open_run(path: Path) -> tuple[RunStore, dict[str, Any]]:
    """Open a run folder read-only: its store and run.yaml, or one clear error."""
    store = RunStore.open(Path(path))
    return store, store.read_run_file()


def summarize(path: Path) -> dict[str, Any]:
    """The run's summary, rebuilt from its log, with the true status (the log alone cannot tell a run in
    progress from one that was killed)."""
    store, document = open_run(path)
    view = read_view(store.path)
    summary = build_summary(document, view)
    summary["status"], summary["reason"] = status_of(store.path, view)
    summary["run_dir"] = str(store.path)
    summary["created"] = created_at(store.path, document)
    summary["version"] = document.get("version")
    return summary


@dataclass
class RunInfo:
    path: str
    name: str
    status: str
    prompt: str
    best_score: float | None
    best_id: str | None
    cost_usd: float
    created: float | None  # Unix seconds
    iterations_done: int
    problem: str | None = None  # why an 'unreadable' run could not be read
    kind: str = "run"  # or "batch": a batch folder (beamsearch.batch_index), listed alongside runs
    ideas: int | None = None  # a batch's ideas, and how many of them are done
    ideas_done: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def created_at(path: Path, document: dict[str, Any]) -> float | None:
    """When a run was made, in Unix seconds like every time in `--json` (the `ts` of events): run.yaml's
    `created`, else (a hand-made or damaged file) the time run.yaml was last written."""
    created = document.get("created")
    try:
        return datetime.strptime(str(created), "%Y-%m-%dT%H:%M:%S%z").timestamp()
    except ValueError:
        pass
    try:
        return round(os.path.getmtime(Path(path) / RUN_FILE), 3)
    except OSError:
        return None


def _sort_key(info: RunInfo) -> tuple[float, str]:
    return (info.created or 0.0, info.name)


def list_runs(runs_dir: Path) -> list[RunInfo]:
    """Every run folder directly inside `runs_dir`, newest first. Folders that are not runs are skipped;
    a run whose files cannot be read is listed with status 'unreadable' rather than hiding it."""
    runs_dir = Path(runs_dir)
    try:
        if not runs_dir.exists() and not runs_dir.is_symlink():
            return []  # no run was made here yet
        is_folder, is_run = runs_dir.is_dir(), (runs_dir / RUN_FILE).is_file()
    except OSError as exc:
        raise RunFolderError(f"The runs folder {shown(runs_dir)} cannot be read: {reason(exc)}.") from None
    if not is_folder:
        raise RunFolderError(f"{shown(runs_dir)} is not a folder; give the folder that holds your runs (default: runs).")
    if is_run:
        raise RunFolderError(f"{shown(runs_dir)} is a run folder, not a folder of runs; see it with: "
                             f"beamsearch show {shlex.quote(str(runs_dir))}")
    infos = []
    try:
        entries = list(runs_dir.iterdir())
    except OSError as exc:
        raise RunFolderError(f"The runs folder {shown(runs_dir)} cannot be read: {reason(exc)}.") from None
    for path in entries:
        info = _run_info(path)
        if info is not None:
            infos.append(info)
    return sorted(infos, key=_sort_key, reverse=True)


def _run_info(path: Path) -> RunInfo | None:
    """One line of `list`: None for what is not a run folder; a run whose files cannot be read, for any
    reason, is listed as 'unreadable' with that reason instead of hiding it or stopping the list."""
    try:
        if is_batch(path):
            return _batch_info(path)
        if not path.is_dir() or not (path / RUN_FILE).is_file():
            return None
    except OSError as exc:
        return _unreadable(path, reason(exc))
    try:
        document = load_run_document(path)
        view = read_view(path)
        status, _ = status_of(path, view)
        summary = build_summary(document, view)
        best = summary.get("best") or {}
        return RunInfo(
            path=str(path), name=path.name, status=status, prompt=summary.get("prompt") or "",
            best_score=best.get("total"), best_id=best.get("id"), cost_usd=summary.get("cost_usd", 0.0),
            created=created_at(path, document), iterations_done=len(summary.get("iterations", [])),
        )
    except RunFolderError as exc:  # named inside the folder: the list already shows the folder's name
        return _unreadable(path, exc.message.replace(f"{path}{os.sep}", ""))
    except (OSError, ValueError) as exc:
        return _unreadable(path, reason(exc))
    except (KeyError, TypeError, AttributeError, IndexError) as exc:  # a log the checks let through
        return _unreadable(path, f"{type(exc).__name__}: {exc}")


def _batch_info(path: Path) -> RunInfo:
    """A batch folder's line (its ideas done and its spend), or 'unreadable' with the reason."""
    from beamsearch.batch_index import batch_info

    try:
        return batch_info(path)
    except RunFolderError as exc:
        info = _unreadable(path, exc.message.replace(f"{path}{os.sep}", ""))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        info = _unreadable(path, f"{type(exc).__name__}: {exc}")
    info.kind = "batch"
    return info


def _unreadable(path: Path, problem: str) -> RunInfo:
    try:
        created: float | None = round(os.path.getmtime(path), 3)
    except OSError:
        created = None
    return RunInfo(str(path), path.name, "unreadable", f"(unreadable: {problem.rstrip('.')})", None, None, 0.0, created, 0,
                   problem=problem)


def family_tree(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The best candidate's ancestors back to iteration 0, oldest first, each with what changed."""
    by_id = {c["id"]: c for c in summary.get("candidates", [])}
    tree = []
    for cid in summary.get("lineage", []):
        c = by_id.get(cid, {})
        iteration = c.get("iteration", 0)
        changed = "expanded" if iteration == 0 else refined_of(c)
        tree.append({"id": cid, "parent": c.get("parent"), "iteration": iteration, "changed": changed,
                     "total": c.get("total"), "alignment": c.get("alignment"), "aesthetic": c.get("aesthetic"),
                     "what": c.get("what", ""), "how": c.get("how", ""), "critique": c.get("critique"),
                     "image": c.get("image")})
    return tree


def show_data(path: Path) -> dict[str, Any]:
    """What `beamsearch show` prints (and `--json` emits): summary, best, family tree, cost by service."""
    summary = summarize(path)
    return {
        "run_dir": summary["run_dir"],
        "prompt": summary.get("prompt"),
        "status": summary["status"],
        "reason": summary["reason"],
        "created": summary.get("created"),
        "search": summary.get("search"),
        "provider": summary.get("provider"),
        "best": summary.get("best"),
        "family_tree": family_tree(summary),
        "iterations": [{k: it.get(k) for k in ("iteration", "dimension", "best_id", "best_total", "children_best",
                                                 "children_median", "survivors", "failed")}
                       for it in summary.get("iterations", [])],
        "failed": [{"id": f.get("id"), "error": f.get("error")} for f in summary.get("failed", [])],
        "usage": summary.get("usage", {}),
        "cost_usd": summary.get("cost_usd", 0.0),
    }
