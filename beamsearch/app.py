"""The run's lifecycle: open a run folder, run one session of the search in it, end it cleanly.

`start_run` and `resume_run` are the public entry points (the CLI, tests and benchmarks call them, so no
behaviour hides in argument parsing). A session owns a task group: the search and its background work
(the checklist) are its children, finished or cancelled *and awaited* before `run_finished` is logged,
so no task outlives the run and no paid answer arrives after it. A cancellation from outside (Ctrl-C,
`asyncio.timeout`) is logged as a resumable stop and then propagates.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from beamsearch import __version__
from beamsearch.compose import Listener, Pieces, Session, build_providers, compose, fit_to_servers
from beamsearch.config import Settings
from beamsearch.costs import budget_reached, load_prices
from beamsearch.engine import Outcome
from beamsearch.errors import BeamsearchError, BudgetExhausted, DiskFull, RunFolderError, SettingsError
from beamsearch.events import RunFinished, RunStarted
from beamsearch.gate import Gate
from beamsearch.livereport import LiveReport
from beamsearch.progress import RunOpened, Stopping, WarningEvent
from beamsearch.providers.base import Providers
from beamsearch.store import RunStore
from beamsearch.summary import build_summary, write_derived
from beamsearch.templates import Templates
from beamsearch.view import RunView, fold

__all__ = ["OpenedRun", "RunResult", "open_for_resume", "open_new_run", "resume_run", "run_opened", "start_run"]


@dataclass
class RunResult:
    """What one session of a run ended with."""

    store: RunStore
    outcome: Outcome | None
    summary: dict[str, Any]
    status: str
    error: BeamsearchError | None = None
    gate: Gate | None = None
    providers: Providers | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 0 if self.error is None else self.error.exit_code


@dataclass
class OpenedRun:
    """A run folder opened (and locked) for a session, with the settings it follows and its past."""

    store: RunStore
    settings: Settings
    past: RunView
    providers: Providers | None = None  # built while opening, to refuse a missing key before a folder is made
    notices: list[str] = field(default_factory=list)  # what to tell the user before the first paid call


def _check_prompt(settings: Settings) -> None:
    if not settings.prompt or not settings.prompt.strip():
        raise SettingsError("No prompt given: pass --prompt \"your idea\" or set 'prompt' in the config file.")
    try:
        settings.prompt.encode("utf-8")
    except UnicodeEncodeError:
        raise SettingsError("The prompt holds bytes that are not valid UTF-8 text; check your terminal's "
                            "encoding.") from None


def open_new_run(settings: Settings, now: float | None = None, pieces: Pieces | None = None) -> OpenedRun:
    """Check what can be checked before a folder exists (prompt, templates, prices, keys), then make
    and lock a new run folder."""
    _check_prompt(settings)
    Templates(settings.prompts_dir)
    load_prices(settings.prices, check=settings)
    providers = pieces.providers if pieces is not None and pieces.providers is not None else build_providers(settings)
    store = RunStore.create(settings.runs_dir, settings.prompt or "", settings.public_dict(), now or time.time())
    store.lock()
    return OpenedRun(store, settings, RunView(), providers)


def open_for_resume(path: Path, config_file: Path | None = None, flags: dict[str, Any] | None = None,
                    environ: dict[str, str] | None = None, trust_endpoints: bool = False) -> OpenedRun:
    """Open a stopped run: check it is a run, lock it, load its settings and log, refuse what cannot be
    resumed (an edited run.yaml, an endpoint the user did not configure unless `trust_endpoints`), and
    return everything a session needs to replay it, with a notice naming where its calls will go."""
    from beamsearch.endpoints import destinations
    from beamsearch.precedence import resolve_for_resume

    store = RunStore.open(path)
    document = store.read_run_file()
    store.lock(check_writable=False)
    try:
        past = fold(store.read_events())  # every event checked (and named by line) before replay
        store.check_writable()  # a log that cannot be read is named as such first
        refuse_edited_run_file(document["settings"], past, store.path)
        settings = resolve_for_resume(document["settings"], config_file, flags, environ, trust_endpoints)
        finish = past.last_finish
        if finish is not None and finish.status == "done" and settings.iterations <= past.iterations_done:
            done = past.iterations_done
            raise RunFolderError(
                f"This run is finished ({done} iteration{'s' if done != 1 else ''}: {finish.reason or 'done'}); "
                f"pass --iterations with more than {done} to extend it."
            )
        Templates(settings.prompts_dir)
        load_prices(settings.prices, check=settings)
    except BaseException:
        store.unlock()
        raise
    notice = destinations(settings)
    return OpenedRun(store, settings, past, notices=[notice] if notice else [])


def refuse_edited_run_file(recorded: dict[str, Any], past: RunView, folder: Path) -> None:
    """A past-shaping setting changed in run.yaml is refused, as one changed by a flag is: run.yaml is
    compared with what the log's `run_started` recorded (a log written before those were kept: the
    prompt is compared with the fingerprints of its expansion steps)."""
    from beamsearch.precedence import PAST_KEYS, shaping, validate
    from beamsearch.stepkeys import inputs_of

    now = shaping(validate(recorded))
    if past.shaping is not None:
        changed = [key for key in PAST_KEYS if key in past.shaping and past.shaping[key] != now[key]]
    else:  # steps i0/<lane>/expand_what were asked {"idea": prompt, "lane": lane}
        expansions = [(key.split("/")[1], step.inputs) for key, step in past.steps.items()
                      if key.startswith("i0/") and key.endswith("/expand_what") and step.inputs]
        changed = ["prompt"] if any(inputs != inputs_of("expand_what", {"idea": now["prompt"], "lane": lane})
                                    for lane, inputs in expansions) else []
    if changed:
        names = ", ".join(f"'{key}'" for key in changed)
        raise RunFolderError(f"{folder / 'run.yaml'} changes {names} from what the run's log recorded, so it cannot "
                             "be resumed: put the recorded value back, or start a new run to change it.")


async def run_opened(opened: OpenedRun, listeners: list[Listener] | None = None,
                     providers: Providers | None = None, pieces: Pieces | None = None) -> RunResult:
    """Run one session in an opened run folder, then close it (log flushed, lock released)."""
    pieces = pieces or Pieces()
    pieces.providers = providers or pieces.providers or opened.providers
    pieces.listeners = [*pieces.listeners, *(listeners or [])]
    try:
        notices = [RunOpened(run_dir=str(opened.store.path), resumed=bool(opened.past.events)),
                   *(WarningEvent(message=warning) for warning in opened.store.warnings)]
        for notice in notices:
            for listener in pieces.listeners:
                listener(notice)
        _check_prompt(opened.settings)
        if opened.past.events:
            opened.store.update_settings(opened.settings.public_dict())  # run.yaml follows what the run now follows
        return await run_session(compose(opened.settings, opened.store, opened.past, pieces))
    finally:
        opened.store.close()


async def start_run(settings: Settings, listeners: list[Listener] | None = None, providers: Providers | None = None,
                    now: float | None = None, *, pieces: Pieces | None = None) -> RunResult:
    """Run a new search to its end (or its stop) in a new run folder."""
    if providers is not None:
        pieces = pieces or Pieces()
        pieces.providers = providers
    return await run_opened(open_new_run(settings, now, pieces), listeners, pieces=pieces)


async def resume_run(path: Path, config_file: Path | None = None, flags: dict[str, Any] | None = None,
                     listeners: list[Listener] | None = None, providers: Providers | None = None,
                     environ: dict[str, str] | None = None, *, pieces: Pieces | None = None,
                     trust_endpoints: bool = False) -> RunResult:
    """Replay the log of a stopped run (no recorded step is asked again) and carry on to its end."""
    return await run_opened(open_for_resume(path, config_file, flags, environ, trust_endpoints), listeners,
                            providers, pieces)


# --- one session --------------------------------------------------------------------------------------


async def run_session(session: Session) -> RunResult:
    """Log the start, run the search in a task group, log the end whatever happens, write the derived
    files. Errors of the search end the session with their status; a cancellation ends it as a
    resumable stop and is raised again; a bug is logged as a failure and raised."""
    report = LiveReport(session.store)  # report.html rewritten at every ranking, in a worker thread
    session.recorder.bus.listeners.append(report)
    from beamsearch.costs import unpriced_models
    from beamsearch.precedence import shaping

    session.recorder.record(RunStarted(version=__version__, resumed=bool(session.past.events),
                                       providers=session.providers.labels, spent_usd=round(session.past.spent, 6),
                                       shaping=shaping(session.settings),
                                       unpriced=unpriced_models(session.settings, session.gate.prices)))
    try:
        await fit_to_servers(session.providers, session.gate.limiters, session.recorder.bus.publish)
        outcome, error, status, reason = await _search(session)
        await asyncio.to_thread(report.close)  # the last mid-run page is written before the final one
    except asyncio.CancelledError:
        report.close()
        session.recorder.bus.publish(Stopping(reason="interrupted"))
        with contextlib.suppress(Exception):
            _finish(session, "stopped", "interrupted by the user")
        raise
    except Exception as exc:  # a bug: say so in the log (the run stays resumable), then let it surface
        report.close()
        with contextlib.suppress(Exception):
            _finish(session, "failed", f"internal error: {type(exc).__name__}: {exc}")
        raise
    finally:
        with contextlib.suppress(Exception):
            await session.providers.aclose()
    if isinstance(error, BudgetExhausted) and getattr(error, "limit", None) is not None:
        error = budget_reached(error.limit, round(fold(session.store.read_events()).spent, 6))  # type: ignore[attr-defined]
        reason = error.message  # the figure of the log, now that every call in flight has settled
    try:
        summary = _finish(session, status, reason)
    except DiskFull as exc:  # the log holds what was recorded; the run is resumable once there is room
        error, status = error if isinstance(error, DiskFull) else exc, "stopped"
        summary = build_summary(session.store.read_run_file(), fold(session.store.read_events()))
    return RunResult(session.store, outcome, summary, status, error, session.gate, session.providers,
                     [*session.store.warnings, *summary.get("warnings", [])])


async def _search(session: Session) -> tuple[Outcome | None, BeamsearchError | None, str, str]:
    """The search and its background work as children of one task group. A search that stops with an
    error still lets its background work finish (a checklist in flight is paid for), then reports."""
    outcome: Outcome | None = None
    error: BeamsearchError | None = None
    try:
        async with asyncio.TaskGroup() as tasks:
            try:
                outcome = await session.engine.run(tasks)
            except BeamsearchError as exc:
                error = exc
    except BaseExceptionGroup as group:  # a bug in a child: raise it as itself, not wrapped
        raise group.exceptions[0] from None
    if error is None:
        assert outcome is not None
        return outcome, None, "done", outcome.stop_reason
    return None, error, "stopped" if isinstance(error, BudgetExhausted | DiskFull) else "failed", error.message


def _finish(session: Session, status: str, reason: str) -> dict[str, Any]:
    """Log the end of the session with the run's one spend figure (the sum of the log's costs, which a
    budget shared with other runs does not give), and rebuild the derived files from the log."""
    view = fold(session.store.read_events())
    finished = RunFinished(status=status, reason=reason, cost_usd=round(view.spent, 6))
    session.recorder.record(finished)
    view.apply(finished)
    return write_derived(session.store, view)
