"""Composition: every object a session of a run needs, built from the settings, each one replaceable.

This is the only module that knows every layer (providers, limiters, budget, gate, steps, engine). It
builds and connects them and does nothing else: running them is the lifecycle's job (`app`). Callers
that need other pieces (tests, benchmarks, a batch of ideas sharing one set of limiters and one budget)
pass them in `Pieces` instead of patching anything.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from beamsearch.config import Settings
from beamsearch.costs import Budget, load_prices
from beamsearch.engine import Engine, SearchSettings
from beamsearch.errors import BeamsearchError
from beamsearch.events import Candidate, Event
from beamsearch.gate import Gate
from beamsearch.judging import judging_settings
from beamsearch.limits import RetryPolicy, ServiceLimiter
from beamsearch.progress import WarningEvent
from beamsearch.providers.base import Providers
from beamsearch.roles import ROLES, billed_model
from beamsearch.steps import Steps
from beamsearch.store import RunStore
from beamsearch.templates import Templates
from beamsearch.view import RunView, journal_ident

Listener = Callable[[Event], None]


@dataclass
class Pieces:
    """What a caller brings instead of what the settings would build. Anything left None is built."""

    providers: Providers | None = None
    limiters: dict[str, ServiceLimiter] | None = None
    budget: Budget | None = None  # an injected budget already holds this run's past spend (a batch counts every
    # idea's past once, in its one budget); only a budget built here is given the past from the log
    prices: dict[str, dict[str, float]] | None = None
    wrap_steps: Callable[[Steps], Any] | None = None  # e.g. a benchmark's stage barriers around the real steps
    listeners: list[Listener] = field(default_factory=list)


class Bus:
    """Fans events out to listeners (the display, the web view, tests, benchmarks)."""

    def __init__(self, listeners: list[Listener] | None = None) -> None:
        self.listeners = list(listeners or [])

    def publish(self, event: Event) -> None:
        for listener in self.listeners:
            listener(event)


def build_providers(settings: Settings) -> Providers:
    """One provider object per role; the simulator is shared when it serves several roles."""
    roles: dict[str, Any] = {}
    labels: dict[str, str] = {}
    simulator = None
    for role in ROLES:
        if settings.role_provider(role) == "sim":
            if simulator is None:
                from beamsearch.providers.sim import Simulator

                simulator = Simulator(settings.seed, settings.sim)
            roles[role], labels[role] = simulator, simulator.label
        else:
            from beamsearch.providers.openai import build_role

            roles[role] = build_role(role, getattr(settings, role))
            labels[role] = f"openai-compatible: {getattr(settings, role).model}"
    return Providers(text=roles["text"], image=roles["image"], vision=roles["vision"], labels=labels)


def build_limiters(settings: Settings) -> dict[str, ServiceLimiter]:
    """One limiter per service, shared by every call of that service in this process."""
    return {role: ServiceLimiter(role, getattr(settings.limits, role).concurrency, getattr(settings.limits, role).rpm,
                                 settings.limits.window_s) for role in ROLES}


async def fit_to_servers(providers: Providers, limiters: dict[str, ServiceLimiter], notify: Listener) -> None:
    """Cap each role's concurrency to what its server says it serves at once (`parallelism()`, which a
    provider may offer: a local one-slot server queues the rest, and their wait in its queue would count
    against their timeouts). The cap is only ever lowered; roles on one server are capped each."""
    roles = [(role, getattr(providers, role)) for role in ROLES]
    asks = [(role, model.parallelism) for role, model in roles if callable(getattr(model, "parallelism", None))]
    answers = await asyncio.gather(*(ask() for _, ask in asks))
    for (role, _), slots in zip(asks, answers, strict=True):
        limiter = limiters.get(role)
        if slots is not None and limiter is not None and slots < limiter.concurrency:
            notify(WarningEvent(message=f"The {role} server serves {slots} request{'s' if slots != 1 else ''} at "
                                f"once, so at most {slots} {role} call{'s' if slots != 1 else ''} will run at once "
                                f"(limits.{role}.concurrency is {limiter.concurrency})."))
            limiter.narrow(slots)


def search_settings(settings: Settings) -> SearchSettings:
    return SearchSettings(
        idea=settings.prompt or "", n=settings.n, m=settings.m, iterations=settings.iterations, alpha=settings.alpha,
        elitism=settings.elitism, target_score=settings.target_score, patience=settings.patience,
        min_improvement=settings.min_improvement, min_survivors=settings.min_survivors,
        judging=judging_settings(settings), refine=settings.refine, variants=settings.variants, rejudge=settings.rejudge,
    )


def same_event(old: Event, new: Event) -> bool:
    """Equal but for the time stamp, compared as the log holds them."""
    return old.model_dump(mode="json", exclude={"ts"}) == new.model_dump(mode="json", exclude={"ts"})


class Recorder:
    """Where a session's events go: the log (the source of truth) first, then the listeners."""

    def __init__(self, store: RunStore, bus: Bus, past: RunView) -> None:
        self.store = store
        self.bus = bus
        self.past = past
        self.on_failure: Callable[[BeamsearchError], Any] | None = None  # the gate's stop: no new paid call

    def record(self, event: Event) -> None:
        try:
            self.store.append(event)
        except BeamsearchError as exc:  # a full disk: nothing more can be recorded, so nothing more is asked
            if self.on_failure is not None:
                self.on_failure(exc)
            raise
        self.bus.publish(event)

    def journal(self, event: Event) -> None:
        """Log a candidate, failed lane or ranking once; a replay that reaches the same one logs nothing,
        one that reaches a different one (a redone image judged anew) logs it again, and the later wins."""
        ident = journal_ident(event)
        if ident is not None:
            known = self.past.journal.get(ident)
            if known is not None and same_event(known, event):
                return
            # a candidate is the engine's working record and changes later (judged again): keep it as logged
            self.past.journal[ident] = event.model_copy(deep=True) if isinstance(event, Candidate) else event
        self.record(event)


@dataclass
class Session:
    """One session of a run (a first run, or a resume): its pieces, connected."""

    settings: Settings
    store: RunStore
    past: RunView
    providers: Providers
    budget: Budget
    gate: Gate
    steps: Any
    engine: Engine
    recorder: Recorder


def compose(settings: Settings, store: RunStore, past: RunView, pieces: Pieces | None = None) -> Session:
    """Build (or take from `pieces`) every object of a session and connect them."""
    pieces = pieces or Pieces()
    prices = pieces.prices if pieces.prices is not None else load_prices(settings.prices, check=settings,
                                                                          warnings=store.warnings)
    providers = pieces.providers or build_providers(settings)
    budget = pieces.budget or Budget(settings.budget_usd())
    if pieces.budget is None:
        for service, cost in past.spent_by_service().items():  # every answer paid for, a redone one twice
            budget.add(service, cost)
    for service, used in past.usage.items():  # the reserve starts from what calls of this run have cost
        if service in ROLES:
            budget.observe(service, billed_model(settings, service), used.highest)
    recorder = Recorder(store, Bus(pieces.listeners), past)
    policy = RetryPolicy(settings.retries.max_attempts, settings.retries.backoff_initial, settings.retries.backoff_max,
                         random.Random(settings.seed))
    gate = Gate(limiters=pieces.limiters or build_limiters(settings), policy=policy, budget=budget, prices=prices,
                models={role: billed_model(settings, role) for role in ROLES}, recorded=dict(past.steps),
                record=recorder.record, notify=recorder.bus.publish, failed=past.settled_failures(),
                timeouts={role: None if settings.role_provider(role) == "sim" else getattr(settings, role).timeout
                          for role in ROLES})
    recorder.on_failure = gate.stop
    steps: Any = Steps(gate, providers, Templates(settings.prompts_dir), settings, store)
    if pieces.wrap_steps is not None:
        steps = pieces.wrap_steps(steps)
    engine = Engine(search_settings(settings), steps, recorder.journal, recorder.bus.publish)
    return Session(settings, store, past, providers, budget, gate, steps, engine, recorder)
