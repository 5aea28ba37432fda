"""Everything the web view knows about run folders and their events, in one place.

The run list folds each log with the core's own fold (`view.RunView`), so it says what `beamsearch list`
says; nothing else in `beamsearch/web` looks inside an event except the page's own script.

A run folder is untrusted data: nothing here follows a path it names (images are served by `paths`),
and every field is checked for its type before it is used.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from beamsearch.errors import BeamsearchError
from beamsearch.estimate import plan_calls, time_lower_bound
from beamsearch.events import LOGGED_TYPES as LOGGED_MODELS
from beamsearch.precedence import validate
from beamsearch.progress import from_data
from beamsearch.runs import is_locked, status_of
from beamsearch.store import EVENTS_FILE, RUN_FILE
from beamsearch.view import RunView

# Events written to events.jsonl (README: "logged"); everything else a run publishes is progress only.
LOGGED_TYPES = frozenset(LOGGED_MODELS)
# Progress that is not logged, streamed to pages when the run runs in the server's own process.
LIVE_TYPES = frozenset({"stage", "attempt_failed", "iteration_started", "ranked", "warning"})
# The settings a page shows (and the plan of the time left needs), taken from run.yaml.
PAGE_SETTINGS = ("prompt", "n", "m", "iterations", "alpha", "elitism", "alignment", "ranking", "judge_samples",
                 "max_cost_usd", "target_score", "patience", "provider")
MAX_RUN_FILE = 4 << 20  # a run.yaml bigger than this is not one beamsearch wrote


def events_path(run_dir: Path) -> Path:
    return Path(run_dir) / EVENTS_FILE


def is_running(run_dir: Path) -> bool:
    """A live process holds the run's lock (in this process or another)."""
    return is_locked(Path(run_dir))


def is_run_folder(path: Path) -> bool:
    try:
        return path.is_dir() and (path / RUN_FILE).is_file()
    except OSError:
        return False


def read_run_file(run_dir: Path) -> dict[str, Any] | None:
    """run.yaml as a mapping with a `settings` mapping, or None if it is missing, too big or not one."""
    where = Path(run_dir) / RUN_FILE
    try:
        if where.stat().st_size > MAX_RUN_FILE:
            return None
        document = yaml.safe_load(where.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError):
        return None
    if not isinstance(document, dict) or not isinstance(document.get("settings"), dict):
        return None
    return document


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _plain(value: Any) -> Any:
    """A settings value fit for JSON (YAML may hold dates and other types a page cannot take)."""
    return value if value is None or isinstance(value, str | bool | int | float) else str(value)


def time_plan(settings: dict[str, Any]) -> list[float] | None:
    """Seconds per iteration of the estimate's time lower bound for these settings, or None when they do
    not make a plan. Uses the settings' own latencies; never reads a file a run folder names."""
    trusted = {k: v for k, v in settings.items() if k not in ("prices", "prompts_dir", "runs_dir")}
    try:
        checked = validate(trusted)
        bound = time_lower_bound(plan_calls(checked), checked)
        return [float(entry["seconds"]) for entry in bound["per_iteration"]]
    except (BeamsearchError, ValueError, TypeError, KeyError, AttributeError):
        return None


def run_meta(run_dir: Path, live: bool = False) -> dict[str, Any]:
    """What a run page needs besides the events: the name, settings, the plan of the time left, whether a
    process is running it now (and whether it is this one, so progress events come too)."""
    document = read_run_file(run_dir) or {"settings": {}}
    settings = document["settings"]
    return {
        "name": Path(run_dir).name,
        "created": _plain(document.get("created")),
        "version": _plain(document.get("version")),
        "settings": {key: _plain(settings.get(key)) for key in PAGE_SETTINGS},
        "plan_seconds": time_plan(settings),
        "running": is_running(run_dir),
        "live": live,
        "now": round(time.time(), 3),
    }


class RunFold(RunView):
    """The run list's view of one run: the core's fold, fed the log's lines one at a time (a line that
    is not a valid event is passed over here; the run page names it)."""

    def add(self, event: dict[str, Any]) -> None:
        try:
            self.apply(from_data(event))
        except (ValidationError, ValueError, TypeError):
            return


def run_entry(run_dir: Path, fold: RunFold, document: dict[str, Any] | None) -> dict[str, Any]:
    """One run of the list, as the index page shows it."""
    settings = (document or {}).get("settings") or {}
    status, reason = status_of(Path(run_dir), fold) if fold.sessions else ("stopped", "not started")
    best = fold.best()
    image = best.image if best else None
    return {
        "name": Path(run_dir).name,
        "status": status if document is not None else "unreadable",
        "reason": reason if document is not None else "its run.yaml cannot be read",
        "prompt": settings.get("prompt") if isinstance(settings.get("prompt"), str) else "",
        "created": _plain((document or {}).get("created")),
        "iterations": settings.get("iterations") if isinstance(settings.get("iterations"), int) else None,
        "ranked": fold.iterations_done,
        "cost_usd": round(fold.spent, 6),
        "max_cost_usd": settings.get("max_cost_usd") if _number(settings.get("max_cost_usd")) else None,
        "simulated": settings.get("provider") == "sim",
        "best": None if best is None else {"id": best.id, "total": best.total,
                                           "image": image if isinstance(image, str) else None},
    }
