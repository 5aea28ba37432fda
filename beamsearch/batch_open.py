"""Opening a batch: a new one from an ideas file, or a stopped one for resuming, with the plan of what
each idea does in this session (start in a new run folder, resume its folder, or nothing: it is done).

Everything that can be checked is checked before a batch folder is made or any call is paid for: every
idea's settings, the templates, the price table, the keys. A batch folder is untrusted data: its
settings are resolved like a run's on resume (the recorded past cannot be changed by flags), and every
run folder it names must lie inside it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from beamsearch import __version__
from beamsearch.batch_events import BatchView, fold_batch
from beamsearch.batch_file import IdeaSpec, checked_settings, idea_settings, read_ideas
from beamsearch.batch_store import BATCH_FILE, BatchDocument, BatchStore
from beamsearch.config import Settings
from beamsearch.costs import load_prices
from beamsearch.errors import BeamsearchError, RunFolderError
from beamsearch.roles import ROLES
from beamsearch.templates import Templates


@dataclass
class IdeaPlan:
    """What one idea does in this session: start in a new run folder (`run_dir` None) or resume `run_dir`."""

    spec: IdeaSpec
    run_dir: Path | None = None
    problem: str | None = None  # why it cannot run (a bad folder named in the log): recorded as a failure


@dataclass
class OpenedBatch:
    """A batch folder opened (and locked) for a session: its document, shared settings, past and plan."""

    store: BatchStore
    document: BatchDocument
    shared: Settings
    view: BatchView
    todo: list[IdeaPlan]
    concurrency: int
    past: dict[int, dict[str, float]] = field(default_factory=dict)  # idea -> its spend so far, by service
    config_file: Path | None = None  # how started ideas resume: the user's own file, flags and environment
    flags: dict[str, Any] = field(default_factory=dict)
    environ: dict[str, str] | None = None

    @property
    def source(self) -> str:
        return self.document.source or BATCH_FILE

    def settings_for(self, idea: IdeaSpec) -> Settings:
        """A new run's settings for `idea`, made when it starts (not held for every idea of the batch)."""
        return idea_settings(self.shared, idea, self.source).model_copy(update={"runs_dir": self.store.path})


def preflight(shared: Settings) -> None:
    """What would fail every idea alike, refused once before anything is made: templates, the price
    table against the models (a budget needs prices), and the key of every role served over the network."""
    Templates(shared.prompts_dir)
    load_prices(shared.prices, check=shared)
    for role in ROLES:
        if shared.role_provider(role) != "sim":
            from beamsearch.providers.openai import api_key

            api_key(role, getattr(shared, role))


def shared_settings(settings: Settings) -> Settings:
    """The settings every idea starts from: the resolved ones without a prompt of their own."""
    return settings.model_copy(update={"prompt": None})


def open_new_batch(source: Path, settings: Settings, concurrency: int | None = None,
                   now: float | None = None) -> OpenedBatch:
    """Read and check every idea, then make and lock a new batch folder in the settings' runs_dir."""
    from beamsearch.batch_estimate import ideas_at_once

    source = Path(source)
    ideas = read_ideas(source)
    shared = shared_settings(settings)
    per_idea = checked_settings(shared, ideas, source.name)  # every mistake before a folder exists
    preflight(shared)
    document = BatchDocument(source.name, shared.public_dict(), ideas, concurrency, version=__version__)
    store = BatchStore.create(shared.runs_dir, document, now or time.time())
    store.lock()
    return OpenedBatch(store, document, shared, BatchView(), [IdeaPlan(idea) for idea in ideas],
                       concurrency or ideas_at_once(shared, per_idea))


def open_batch_for_resume(path: Path, config_file: Path | None = None, flags: dict[str, Any] | None = None,
                          environ: dict[str, str] | None = None) -> OpenedBatch:
    """Open a stopped batch: lock it, read its ideas and log, and plan every idea that is not done."""
    from beamsearch.batch_estimate import ideas_at_once
    from beamsearch.precedence import resolve_for_resume

    store = BatchStore.open(path)
    store.lock()
    try:
        document = store.read_document()
        view = fold_batch(store.read_events())
        shared = shared_settings(resolve_for_resume(document.settings, config_file, flags, environ))
        preflight(shared)
        flags = dict(flags or {})
        per_idea = checked_settings(shared, document.ideas, BATCH_FILE)
        todo, past = [], {}
        for idea in document.ideas:
            plan, spent = _plan(store, view, idea, flags.get("iterations"))
            past[idea.number] = spent
            if plan is not None:
                todo.append(plan)
    except BaseException:
        store.close()
        raise
    concurrency = document.concurrency or ideas_at_once(shared, per_idea)
    return OpenedBatch(store, document, shared, view, todo, concurrency, past, config_file, flags,
                       None if environ is None else dict(environ))


def _plan(store: BatchStore, view: BatchView, idea: IdeaSpec, iterations: int | None) -> tuple[IdeaPlan | None, dict[str, float]]:
    """One idea's plan and what it has spent so far (by service), which the batch's budget counts."""
    state = view.ideas.get(idea.number)
    if state is None or state.run is None:
        return IdeaPlan(idea), {}
    finished = state.finished
    if state.status == "done" and finished is not None and (iterations is None or iterations <= finished.iterations_done):
        return None, dict(finished.cost_by_service)
    try:
        run_dir = store.run_path(state.run)
    except RunFolderError as exc:
        return IdeaPlan(idea, problem=exc.message), {}
    return IdeaPlan(idea, run_dir=run_dir), _spent(run_dir)


def _spent(run_dir: Path) -> dict[str, float]:
    """An idea's spend from its own log (a folder that cannot be read fails when the idea opens it)."""
    from beamsearch.runs import read_view

    try:
        return read_view(run_dir).spent_by_service()
    except (BeamsearchError, OSError):
        return {}
