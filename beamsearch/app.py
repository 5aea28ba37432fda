"""Wiring: settings -> providers -> limits, budget, gate -> steps -> engine -> run folder.

This is the only module that knows every layer. The CLI calls `start_run` and `resume_run`; tests and
benchmarks call them too, so no behaviour hides in argument parsing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from beamsearch import __version__
from beamsearch.config import Settings
from beamsearch.costs import Budget, load_prices
from beamsearch.engine import Engine, Outcome, SearchSettings
from beamsearch.errors import BeamsearchError, BudgetExhausted, Interrupted, SettingsError
from beamsearch.gate import Gate
from beamsearch.judging import judging_settings
from beamsearch.limits import SERVICES, RetryPolicy, ServiceLimiter
from beamsearch.providers.base import Providers
from beamsearch.steps import Steps
from beamsearch.store import RunStore
from beamsearch.summary import build_summary
from beamsearch.templates import Templates

Listener = Callable[[dict[str, Any]], None]


def build_providers(settings: Settings) -> Providers:
    """One provider object per role; the simulator is shared when it serves several roles."""
    roles: dict[str, Any] = {}
    labels: dict[str, str] = {}
    simulator = None
    for role in SERVICES:
        name = settings.role_provider(role)
        if name == "sim":
            if simulator is None:
                from beamsearch.providers.sim import Simulator

                simulator = Simulator(settings.seed, settings.sim)
            roles[role] = simulator
            labels[role] = simulator.label
        else:
            from beamsearch.providers.openai import build_role

            roles[role] = build_role(role, getattr(settings, role))
            labels[role] = f"openai-compatible: {getattr(settings, role).model}"
    return Providers(text=roles["text"], image=roles["image"], vision=roles["vision"], labels=labels)


@dataclass
class RunResult:
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


class Bus:
    """Fans progress events out to listeners (the display, tests, benchmarks)."""

    def __init__(self, listeners: list[Listener] | None = None) -> None:
        self.listeners = list(listeners or [])

    def publish(self, event: dict[str, Any]) -> None:
        for listener in self.listeners:
            listener(event)


def search_settings(settings: Settings) -> SearchSettings:
    return SearchSettings(
        idea=settings.prompt or "", n=settings.n, m=settings.m, iterations=settings.iterations, alpha=settings.alpha,
        elitism=settings.elitism, target_score=settings.target_score, patience=settings.patience,
        min_improvement=settings.min_improvement, min_survivors=settings.min_survivors,
        judging=judging_settings(settings),
    )


def _event_ident(event: dict[str, Any]) -> str | None:
    kind = event.get("type")
    if kind in ("candidate", "lane_failed"):
        return f"{kind}:{event['id']}"
    if kind == "ranking":
        return f"ranking:{event['iteration']}"
    return None


def _same_event(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Equal but for the time stamp (and JSON's lists for tuples: compare as the log would hold them)."""
    def plain(event: dict[str, Any]) -> Any:
        return json.loads(json.dumps({k: v for k, v in event.items() if k != "ts"}, default=str))
    return bool(plain(old) == plain(new))


def settled_failures(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Recorded step failures that a ranking has already taken into account: replay repeats them, so the
    replayed past is the recorded one. A failure in an iteration that was never ranked (the run stopped
    in it, perhaps because of that failure) is the future: resume asks again."""
    ranked = {e["iteration"] for e in events if e.get("type") == "ranking"}
    settled = {}
    for event in events:
        if event.get("type") == "step_failed":
            head = event["key"].split("/", 1)[0]
            if head[:1] == "i" and head[1:].isdigit() and int(head[1:]) in ranked:
                settled[event["key"]] = event
        elif event.get("type") == "step":
            settled.pop(event["key"], None)  # answered after all (a later resume): the answer wins
    return settled


async def execute(
    settings: Settings,
    store: RunStore,
    past_events: list[dict[str, Any]],
    listeners: list[Listener] | None = None,
    providers: Providers | None = None,
) -> RunResult:
    """Run (or replay and continue) the search in `store`, then write the derived files."""
    if not settings.prompt:
        raise SettingsError("No prompt given: pass --prompt \"your idea\" or set 'prompt' in the config file.")
    templates = Templates(settings.prompts_dir)
    prices = load_prices(settings.prices, check=settings, warnings=store.warnings)
    providers = providers or build_providers(settings)
    bus = Bus(listeners)
    logged = {ident: e for e in past_events if (ident := _event_ident(e))}

    def record(event: dict[str, Any]) -> None:
        store.append(event)
        bus.publish(event)

    def journal(ident: str, event: dict[str, Any]) -> None:
        """Log a candidate, failed lane or ranking once; a replay that reaches the same one logs nothing,
        one that reaches a different one (a redone image judged anew) logs it again, and the later wins."""
        if ident in logged and _same_event(logged[ident], event):
            return
        logged[ident] = event
        record(event)

    recorded = {e["key"]: e for e in past_events if e.get("type") == "step"}  # a redone step: the later wins
    failed = settled_failures(past_events)
    budget = Budget(settings.max_cost_usd)
    for event in past_events:
        if event.get("type") == "step":  # every answer paid for, a redone one twice
            budget.add(event["service"], event.get("cost", 0.0))
    limiters = {s: ServiceLimiter(s, getattr(settings.limits, s).concurrency, getattr(settings.limits, s).rpm,
                                  settings.limits.window_s) for s in SERVICES}
    policy = RetryPolicy(settings.retries.max_attempts, settings.retries.backoff_initial, settings.retries.backoff_max,
                         random.Random(settings.seed))
    gate = Gate(limiters=limiters, policy=policy, budget=budget, prices=prices,
                models={s: getattr(settings, s).model if settings.role_provider(s) != "sim" else f"sim-{s}" for s in SERVICES},
                recorded=recorded, record=record, notify=bus.publish, failed=failed,
                timeouts={s: None if settings.role_provider(s) == "sim" else getattr(settings, s).timeout
                          for s in SERVICES})
    steps = Steps(gate, providers, templates, settings, store)
    engine = Engine(search_settings(settings), steps, journal, bus.publish)
    record({"type": "run_started", "version": __version__, "resumed": bool(past_events),
            "providers": providers.labels, "spent_usd": round(budget.spent, 6)})
    outcome: Outcome | None = None
    error: BeamsearchError | None = None
    status, reason = "done", ""
    try:
        outcome = await engine.run()
        reason = outcome.stop_reason
    except BudgetExhausted as exc:
        error, status, reason = exc, "stopped", exc.message
    except asyncio.CancelledError:
        error, status, reason = Interrupted("Interrupted."), "stopped", "interrupted by the user"
    except BeamsearchError as exc:
        error, status, reason = exc, "failed", exc.message
    except Exception as exc:  # a bug: say so in the log (the run stays resumable), then let it surface
        record({"type": "run_finished", "status": "failed", "reason": f"internal error: {type(exc).__name__}: {exc}",
                "cost_usd": round(budget.spent, 6)})
        with contextlib.suppress(Exception):
            write_derived(store)
        raise
    finally:
        with contextlib.suppress(Exception):
            await providers.aclose()
    record({"type": "run_finished", "status": status, "reason": reason, "cost_usd": round(budget.spent, 6)})
    summary = write_derived(store)
    return RunResult(store, outcome, summary, status, error, gate, providers, list(store.warnings))


def write_derived(store: RunStore) -> dict[str, Any]:
    """summary.json, best.png and report.html, all rebuilt from the log."""
    document = store.read_run_file()
    summary = build_summary(document, store.read_events())
    store.write_json("summary.json", summary)
    best = summary.get("best")
    if best and best.get("image") and (store.path / best["image"]).is_file():
        suffix = Path(best["image"]).suffix
        store.copy_file(best["image"], f"best{suffix}")
    try:
        from beamsearch.report import write_report
    except ImportError:  # the report module is optional until it exists
        return summary
    write_report(store, summary)
    return summary


async def start_run(settings: Settings, listeners: list[Listener] | None = None,
                    providers: Providers | None = None, now: float | None = None) -> RunResult:
    if not settings.prompt or not settings.prompt.strip():
        raise SettingsError("No prompt given: pass --prompt \"your idea\" or set 'prompt' in the config file.")
    try:
        settings.prompt.encode("utf-8")
    except UnicodeEncodeError:
        raise SettingsError("The prompt holds bytes that are not valid UTF-8 text; check your terminal's "
                            "encoding.") from None
    Templates(settings.prompts_dir)  # bad templates, prices or keys fail before a folder is made
    load_prices(settings.prices, check=settings)
    if providers is None:
        providers = build_providers(settings)
    store = RunStore.create(settings.runs_dir, settings.prompt, settings.public_dict(), now or time.time())
    store.lock()
    try:
        return await execute(settings, store, [], listeners, providers)
    finally:
        store.close()


def iterations_recorded(events: list[dict[str, Any]]) -> int:
    return len({e["iteration"] for e in events if e.get("type") == "ranking"})


def last_finish(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    finishes = [e for e in events if e.get("type") == "run_finished"]
    started = [i for i, e in enumerate(events) if e.get("type") == "run_started"]
    if not finishes or (started and events.index(finishes[-1]) < started[-1]):
        return None
    return finishes[-1]


def open_for_resume(path: Path, config_file: Path | None = None, flags: dict[str, Any] | None = None,
                    environ: dict[str, str] | None = None) -> tuple[RunStore, Settings, list[dict[str, Any]]]:
    """Open a stopped run: check it is a run, lock it, load its settings and log, refuse what cannot be
    resumed, and return everything `execute` needs to replay it."""
    from beamsearch.config import resolve_for_resume
    from beamsearch.errors import RunFolderError

    store = RunStore.open(path)
    document = store.read_run_file()
    store.lock(check_writable=False)
    try:
        events = store.read_events(validate=True)  # every event checked (and named by line) before replay
        store.check_writable()  # a log that cannot be read is named as such first
        settings = resolve_for_resume(document["settings"], config_file, flags, environ)
        finish = last_finish(events)
        done = iterations_recorded(events)
        if finish is not None and finish.get("status") == "done" and settings.iterations <= done:
            raise RunFolderError(
                f"This run is finished ({done} iteration{'s' if done != 1 else ''}: {finish.get('reason', 'done')}); "
                f"pass --iterations with more than {done} to extend it."
            )
        Templates(settings.prompts_dir)
        load_prices(settings.prices, check=settings)
    except BaseException:
        store.unlock()
        raise
    return store, settings, events


async def resume_run(path: Path, config_file: Path | None = None, flags: dict[str, Any] | None = None,
                     listeners: list[Listener] | None = None, providers: Providers | None = None,
                     environ: dict[str, str] | None = None) -> RunResult:
    """Replay the log of a stopped run (no recorded step is asked again) and carry on to its end."""
    return await resume_opened(open_for_resume(path, config_file, flags, environ), listeners, providers)


async def resume_opened(opened: tuple[RunStore, Settings, list[dict[str, Any]]],
                        listeners: list[Listener] | None = None, providers: Providers | None = None) -> RunResult:
    """Carry on a run that `open_for_resume` opened and locked (the CLI opens it first, to refuse what
    cannot be resumed before any display starts, without reading the log twice)."""
    store, settings, events = opened
    try:
        for warning in store.warnings:
            for listener in listeners or []:
                listener({"type": "warning", "message": warning})
        _update_run_file(store, settings)
        return await execute(settings, store, events, listeners, providers)
    finally:
        store.close()


def _update_run_file(store: RunStore, settings: Settings) -> None:
    """Keep run.yaml's settings current with what the run now follows (more iterations, a new budget)."""
    import yaml

    from beamsearch.store import RUN_FILE, atomic_write

    document = store.read_run_file()
    document["settings"] = settings.public_dict()
    atomic_write(store.path / RUN_FILE, yaml.safe_dump(document, sort_keys=False, allow_unicode=True).encode())
