"""The one gate every model call passes through: replay, budget, limits, retries, recording.

A step is identified by a stable key (`i2/c07/image`). If the run's log already holds that key, the gate
answers from the log and the provider is never asked: this is how resume avoids paying twice. Otherwise
the call waits for its service's limiter, runs, is retried on transient failures, and its answer is
appended to the log the moment it arrives.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from beamsearch.costs import Budget, cost_of, typical_cost
from beamsearch.errors import (
    AuthError,
    BeamsearchError,
    BudgetExhausted,
    CallError,
    RetryableError,
    RunFailed,
    StepFailed,
)
from beamsearch.events import Event, Step, StepFailure, UsageRecord
from beamsearch.limits import RetryPolicy, ServiceLimiter
from beamsearch.progress import AttemptFailed
from beamsearch.providers.base import Usage


@dataclass
class StepAnswer:
    """What one successful attempt produced: a JSON-able result (what replay returns), its usage and
    provider metadata worth keeping (latency drawn, simulator truth, revised prompt, ...)."""

    result: dict[str, Any]
    usage: Usage | None = None
    meta: dict[str, Any] = field(default_factory=dict)


Attempt = Callable[[], Awaitable[StepAnswer]]
Record = Callable[[Event], None]


class Gate:
    def __init__(
        self,
        *,
        limiters: dict[str, ServiceLimiter],
        policy: RetryPolicy,
        budget: Budget,
        prices: dict[str, dict[str, float]],
        models: dict[str, str],
        recorded: dict[str, Step],
        record: Record,
        notify: Record | None = None,
        failed: dict[str, StepFailure] | None = None,
        timeouts: dict[str, float | None] | None = None,
    ) -> None:
        self.limiters = limiters
        self.policy = policy
        self.budget = budget
        self.prices = prices
        self.models = models
        self.recorded = recorded
        self.failed = failed if failed is not None else {}  # settled failures: replayed as failures
        # the longest one attempt may take, everything included: an SDK's timeout is per read, so a server
        # that trickles bytes would otherwise hold a lane for ever
        self.timeouts = timeouts or {}
        self._record = record
        self._notify = notify or (lambda event: None)
        self.stop_reason: BeamsearchError | None = None
        self.live_calls: Counter[str] = Counter()
        self.attempts: Counter[str] = Counter()
        self.replayed: Counter[str] = Counter()
        self.retries = 0

    def _stop(self, reason: BeamsearchError) -> BeamsearchError:
        if self.stop_reason is None:
            self.stop_reason = reason
        return self.stop_reason

    async def call(
        self,
        key: str,
        service: str,
        attempt: Attempt,
        still_valid: Callable[[dict[str, Any]], bool] | None = None,
        inputs: str | None = None,
    ) -> dict[str, Any]:
        """Answer step `key`: from the log if it is there (and `still_valid` agrees), else live.

        `inputs` fingerprints what the step was asked (prompt, images). A recorded answer to other inputs
        is not this step's answer any more (an image redone after its file went missing, and everything
        that follows from it), so the step runs live. A step that finally failed is recorded too, and a
        settled failure (see `failed`) fails again on replay instead of being asked again."""
        recorded = self.recorded.get(key)
        if (recorded is not None and _same_inputs(recorded.inputs, inputs)
                and (still_valid is None or still_valid(recorded.result))):
            self.replayed[service] += 1
            return recorded.result
        failure = self.failed.get(key)
        if failure is not None and _same_inputs(failure.inputs, inputs):
            self.replayed[service] += 1
            raise StepFailed(failure.error)
        limiter = self.limiters[service]
        estimate = typical_cost(service, self.models.get(service, ""), self.prices)
        started = time.monotonic()

        try:
            try:
                answer, number = await self._attempt(key, service, limiter, estimate, attempt, 1), 1
            except RetryableError as first:
                answer, number = await self._retry(key, service, limiter, estimate, attempt, first)
        except CallError as exc:  # this step is over: its lane fails, and the log says so
            failed = StepFailure(key=key, service=service, error=exc.message, kind=type(exc).__name__, inputs=inputs)
            self._record(failed)
            self.failed[key] = failed
            raise
        cost = cost_of(answer.usage, self.prices) if answer.usage is not None else 0.0
        self.budget.settle(estimate, service, cost)
        step = Step(key=key, service=service, result=answer.result,
                    usage=UsageRecord(**answer.usage.to_dict()) if answer.usage else None, cost=round(cost, 8),
                    attempts=number, elapsed=round(time.monotonic() - started, 4), meta=answer.meta, inputs=inputs)
        self._record(step)
        self.recorded[key] = step
        return answer.result

    def _backoff(self, limiter: ServiceLimiter, attempt_number: int, error: BaseException | None) -> float:
        delay = self.policy.delay(attempt_number, error)
        if isinstance(error, RetryableError) and error.pause_service:
            limiter.pause(delay)  # a 429 holds the whole service, so lanes back off together
        return delay

    async def _retry(self, key: str, service: str, limiter: ServiceLimiter, estimate: float, attempt: Attempt,
                     first: RetryableError) -> tuple[StepAnswer, int]:
        """Attempts 2 to `max_attempts`, through tenacity. The first attempt runs outside it because
        tenacity's set-up per call (it inspects every hook on each round) cost a tenth of the engine's CPU
        per candidate at N=256, and nearly every call succeeds at once."""
        limit = self.policy.max_attempts
        if limit <= 1:
            raise StepFailed(f"{service} call failed after {limit} attempts: {first.message}") from first
        self.retries += 1
        await asyncio.sleep(self._backoff(limiter, 1, first))

        def wait(state: RetryCallState) -> float:
            return self._backoff(limiter, state.attempt_number + 1, state.outcome.exception() if state.outcome else None)

        def before_sleep(state: RetryCallState) -> None:
            self.retries += 1

        retrying = AsyncRetrying(stop=stop_after_attempt(limit - 1), wait=wait,
                                 retry=retry_if_exception_type(RetryableError), before_sleep=before_sleep, reraise=True)
        try:
            async for trial in retrying:
                with trial:
                    answer = await self._attempt(key, service, limiter, estimate, attempt,
                                                 trial.retry_state.attempt_number + 1)
        except RetryableError as exc:
            raise StepFailed(f"{service} call failed after {limit} attempts: {exc.message}") from exc
        return answer, retrying.statistics.get("attempt_number", 1) + 1

    async def _attempt(self, key: str, service: str, limiter: ServiceLimiter, estimate: float, attempt: Attempt,
                       number: int) -> StepAnswer:
        """One attempt: reserve budget, wait for the service's limiter, call. On success the reservation
        is settled by the caller; on any failure it is released here."""
        if self.stop_reason is not None:
            raise self.stop_reason
        try:
            self.budget.reserve(estimate)
        except BudgetExhausted as exc:
            raise self._stop(exc) from None
        try:
            async with limiter.slot():
                if self.stop_reason is not None:
                    raise self.stop_reason
                self.attempts[service] += 1
                self.live_calls[service] += 1
                limit = self.timeouts.get(service)
                if limit is None:
                    return await attempt()
                try:
                    return await asyncio.wait_for(attempt(), limit)
                except TimeoutError:
                    raise RetryableError(f"no whole answer within {limit:g} s") from None
        except RetryableError as exc:
            self.budget.release(estimate)
            self._notify(AttemptFailed(key=key, service=service, attempt=number, error=exc.message,
                                       final=number >= self.policy.max_attempts))
            raise
        except AuthError as exc:
            self.budget.release(estimate)
            raise self._stop(RunFailed(exc.message)) from exc
        except BaseException:
            self.budget.release(estimate)
            raise


def _same_inputs(recorded: str | None, inputs: str | None) -> bool:
    """A recorded event answers these inputs, or cannot tell (a log written before inputs were kept)."""
    return inputs is None or recorded in (None, inputs)
