"""A batch of ideas: one ordinary run per idea, sharing one set of service limiters and one budget.

Ideas run side by side, up to `concurrency` at once, each in its own run folder and session exactly as
`beamsearch run` would run it (`app.open_new_run` / `app.open_for_resume` and `app.run_opened`), with the
batch's limiters and a handle on the batch's budget injected through `compose.Pieces`. So the configured
rpm and concurrency hold across the batch, `max_cost_usd` caps the batch, and every idea's folder can be
resumed, shown and reported on its own.

Structured concurrency: the ideas are children of one task group; none outlives the batch. An idea that
fails (bad answers, refusals, too few survivors, even a bug) is recorded in `batch.jsonl` and the others
go on. Ctrl-C cancels the task group: every idea logs its own resumable stop, then the batch logs its own.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from beamsearch import __version__, app
from beamsearch.batch_events import BatchFinished, BatchStarted, IdeaFinished, IdeaStarted
from beamsearch.batch_open import IdeaPlan, OpenedBatch
from beamsearch.compose import Listener, Pieces, build_limiters
from beamsearch.config import Settings
from beamsearch.costs import Budget, load_prices, typical_cost
from beamsearch.errors import BeamsearchError, BudgetExhausted, RunFolderError
from beamsearch.events import Event
from beamsearch.limits import ServiceLimiter, rate_window
from beamsearch.providers.base import Providers
from beamsearch.roles import ROLES, billed_model

INDEX_EVERY_S = 30.0  # batch_summary.json and index.html are rebuilt at most this often while ideas finish
START_RECORD = 1024  # starts a shared limiter remembers beyond its window (it needs only the window's)


class IdeaBudget:
    """One idea's handle on the batch's budget. Every call reserves, settles and releases on the shared
    budget (so its limit holds over the whole batch); what the idea itself has spent, its past included,
    is counted here, because that is what its own run logs as its cost.

    Everything but `spent`, `by_service` and `summary` is the shared budget's own (whatever methods it
    has): a call is passed on, and what it added to the shared spend, service by service, is the idea's.
    """

    def __init__(self, shared: Budget, past: dict[str, float]) -> None:
        self.shared = shared
        self.by_service: dict[str, float] = dict(past)

    @property
    def spent(self) -> float:
        return sum(self.by_service.values())

    def summary(self) -> dict[str, Any]:
        return {"total_usd": round(self.spent, 6), "by_service": {k: round(v, 6) for k, v in self.by_service.items()}}

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.shared, name)
        if not callable(attribute):
            return attribute

        def counted(*args: Any, **kwargs: Any) -> Any:
            before = dict(self.shared.by_service)
            try:
                return attribute(*args, **kwargs)
            finally:
                for service, total in self.shared.by_service.items():
                    if (added := total - before.get(service, 0.0)) != 0:
                        self.by_service[service] = self.by_service.get(service, 0.0) + added

        return counted


def batch_limiters(shared: Settings) -> dict[str, ServiceLimiter]:
    """The one set of limiters of the batch. Each keeps a bounded record of its starts (the window it
    enforces needs only the last `allowed`), so memory does not grow with the number of ideas run."""
    limiters = build_limiters(shared)
    for role, limiter in limiters.items():
        rpm = getattr(shared.limits, role).rpm
        allowed = rate_window(rpm, shared.limits.window_s)[0] if rpm else 0
        limiter.starts = deque(limiter.starts, maxlen=allowed + START_RECORD)  # type: ignore[assignment]
    return limiters


@dataclass
class BatchResult:
    """What a session of a batch ended with."""

    path: Path
    status: str  # done, stopped (budget), failed (an idea failed)
    summary: dict[str, Any]
    exit_code: int
    warnings: list[str]


def exit_code_of(counts: dict[str, int], budget_hit: bool) -> tuple[str, int]:
    """0 only when every idea is done; 3 when the budget stopped the batch; 1 when an idea failed."""
    if budget_hit or counts.get("not_started", 0) or counts.get("stopped", 0):
        return "stopped", BudgetExhausted.exit_code
    if counts.get("failed", 0):
        return "failed", 1
    return "done", 0


def _finished(number: int, run: str | None, summary: dict[str, Any], status: str, reason: str,
              budget: bool = False) -> IdeaFinished:
    best = summary.get("best") or {}
    usage = summary.get("usage") or {}
    return IdeaFinished(idea=number, run=run, status=status, reason=reason, budget=budget,
                        cost_usd=round(float(summary.get("cost_usd", 0.0)), 6),
                        cost_by_service={s: round(float(u.get("cost_usd", 0.0)), 6) for s, u in usage.items()},
                        best_id=best.get("id"), best_total=best.get("total"), best_image=best.get("image"),
                        iterations_done=len(summary.get("iterations") or []))


class BatchRunner:
    """One session of a batch: the shared pieces, the schedule, and the record of every idea."""

    def __init__(self, opened: OpenedBatch, listeners: list[Listener] | None = None,
                 providers_for: Callable[[Settings], Providers] | None = None,
                 idea_listeners: Callable[[int], list[Listener]] | None = None) -> None:
        self.opened = opened
        self.listeners = list(listeners or [])
        self.providers_for = providers_for
        self.idea_listeners = idea_listeners
        self.limiters = batch_limiters(opened.shared)
        self.budget = Budget(opened.shared.budget_usd())  # `none` lifts it; unset and paid: the default
        for spent in opened.past.values():  # every idea's past, once: the batch's spend so far
            for service, cost in spent.items():
                self.budget.add(service, cost)
        prices = load_prices(opened.shared.prices)
        self.smallest_call = min(typical_cost(s, billed_model(opened.shared, s), prices) for s in ROLES)
        self.budget_hit = False
        self.last_index = time.monotonic()

    def record(self, event: Event) -> None:
        """The batch log first (the source of truth), then its fold, then the listeners."""
        self.opened.store.append(event)
        self.opened.view.apply(event)
        for listener in self.listeners:
            listener(event)

    def _out_of_budget(self) -> bool:
        """No more ideas once the budget stopped one, or cannot pay for even the cheapest call."""
        limit = self.budget.limit
        if limit is not None and self.budget.spent + self.budget.reserved + self.smallest_call > limit:
            self.budget_hit = True
        return self.budget_hit

    async def run(self) -> BatchResult:
        opened = self.opened
        self.record(BatchStarted(version=__version__, resumed=opened.view.sessions > 0, ideas=len(opened.document.ideas),
                                 concurrency=opened.concurrency, spent_usd=round(self.budget.spent, 6)))
        try:
            await self._schedule()
        except asyncio.CancelledError:
            self._end("stopped", "interrupted by the user")
            raise
        counts = self._counts()
        status, code = exit_code_of(counts, self.budget_hit)
        reason = {"done": "every idea is done", "failed": f"{counts['failed']} idea(s) failed",
                  "stopped": "the budget is reached" if self.budget_hit else "some ideas are not done"}[status]
        summary = self._end(status, reason)
        return BatchResult(opened.store.path, status, summary, code, list(opened.store.warnings))

    def _counts(self) -> dict[str, int]:
        states = [self.opened.view.ideas.get(i.number) for i in self.opened.document.ideas]
        counts = {"done": 0, "failed": 0, "stopped": 0, "not_started": 0}
        for state in states:
            status = "not_started" if state is None or state.status == "not started" else state.status
            counts[status if status in counts else "stopped"] += 1
        return counts

    def _end(self, status: str, reason: str) -> dict[str, Any]:
        from beamsearch.batch_index import write_batch_derived

        counts = self._counts()
        self.record(BatchFinished(status=status, reason=reason, cost_usd=round(self.budget.spent, 6), **counts))
        return write_batch_derived(self.opened.store, self.opened.document, self.opened.view)

    async def _schedule(self) -> None:
        """Up to `concurrency` ideas at once, in file order; a slot freed starts the next idea."""
        slots = asyncio.Semaphore(self.opened.concurrency)
        async with asyncio.TaskGroup() as tasks:
            for plan in self.opened.todo:
                await slots.acquire()
                if self._out_of_budget():
                    slots.release()
                    break
                tasks.create_task(self._slot(plan, slots), name=f"idea {plan.spec.number}")

    async def _slot(self, plan: IdeaPlan, slots: asyncio.Semaphore) -> None:
        try:
            await self._idea(plan)
        finally:
            slots.release()
            if time.monotonic() - self.last_index > INDEX_EVERY_S:
                self._write_index()

    def _write_index(self) -> None:
        from beamsearch.batch_index import write_batch_derived

        self.last_index = time.monotonic()
        try:
            write_batch_derived(self.opened.store, self.opened.document, self.opened.view)
        except BeamsearchError as exc:
            self.opened.store.warnings.append(exc.message)

    async def _idea(self, plan: IdeaPlan) -> None:
        """One idea's session. Whatever happens to it is recorded and stays with it; only a cancellation
        (Ctrl-C) goes on up, after the idea has logged its stop."""
        number = plan.spec.number
        try:
            opened = self._open(plan)
        except BeamsearchError as exc:
            self._already_done(plan, exc)
            return
        except Exception as exc:  # a bug in opening this idea: its failure, not the batch's
            self.record(IdeaFinished(idea=number, run=None, status="failed", reason=_internal(exc)))
            return
        run = opened.store.path.name
        providers = opened.providers or (self.providers_for(opened.settings) if self.providers_for else None)
        pieces = Pieces(providers=providers, limiters=self.limiters, budget=IdeaBudget(self.budget, opened.past.spent_by_service()),  # type: ignore[arg-type]
                        listeners=self.idea_listeners(number) if self.idea_listeners else [])
        self.record(IdeaStarted(idea=number, run=run, resumed=plan.run_dir is not None))
        try:
            result = await app.run_opened(opened, pieces=pieces)
        except asyncio.CancelledError:
            self.record(_finished(number, run, _summary_of(opened.store.path), "stopped", "interrupted by the user"))
            raise
        except Exception as exc:  # a bug inside this idea's session: it logged it; the others go on
            self.record(_finished(number, run, _summary_of(opened.store.path), "failed", _internal(exc)))
            return
        budget = isinstance(result.error, BudgetExhausted)
        self.budget_hit = self.budget_hit or budget
        reason = result.error.message if result.error is not None else str(result.summary.get("reason") or "")
        self.record(_finished(number, run, result.summary, result.status, reason, budget))

    def _open(self, plan: IdeaPlan) -> app.OpenedRun:
        """Open the idea's run folder: a new one in the batch folder, or its own to resume. What it has
        spent is counted again from its log (the batch counted the figure it knew)."""
        if plan.problem is not None:
            raise RunFolderError(plan.problem)
        o = self.opened
        if plan.run_dir is None:
            settings = o.settings_for(plan.spec)
            providers = self.providers_for(settings) if self.providers_for else None
            return app.open_new_run(settings, pieces=Pieces(providers=providers))
        opened = app.open_for_resume(plan.run_dir, o.config_file, o.flags, o.environ)
        known = o.past.get(plan.spec.number, {})
        for service, cost in opened.past.spent_by_service().items():
            if (missing := cost - known.get(service, 0.0)) != 0:
                self.budget.add(service, missing)
        o.past[plan.spec.number] = opened.past.spent_by_service()
        return opened

    def _already_done(self, plan: IdeaPlan, exc: BeamsearchError) -> None:
        """An idea that could not be opened failed, unless its run was finished all along (a batch killed
        between the run's end and its record, or an idea resumed on its own since)."""
        if plan.run_dir is not None and isinstance(exc, RunFolderError):
            summary = _summary_of(plan.run_dir)
            if summary.get("status") == "done":
                self.record(_finished(plan.spec.number, plan.run_dir.name, summary, "done", str(summary.get("reason"))))
                return
        run = plan.run_dir.name if plan.run_dir is not None else None
        self.record(IdeaFinished(idea=plan.spec.number, run=run, status="failed", reason=exc.message))


def _summary_of(run_dir: Path) -> dict[str, Any]:
    """The run's summary from its log, or nothing if it cannot be read (the idea's failure says why)."""
    from beamsearch.runs import summarize

    try:
        return summarize(run_dir)
    except Exception:
        return {}


def _internal(exc: BaseException) -> str:
    detail = " ".join(str(exc).split())
    return f"internal error: {type(exc).__name__}{': ' + detail if detail else ''}"


async def run_batch(opened: OpenedBatch, listeners: list[Listener] | None = None,
                    providers_for: Callable[[Settings], Providers] | None = None,
                    idea_listeners: Callable[[int], list[Listener]] | None = None) -> BatchResult:
    """Run one session of an opened batch to its end (or its stop), then close it."""
    try:
        return await BatchRunner(opened, listeners, providers_for, idea_listeners).run()
    finally:
        opened.store.close()
