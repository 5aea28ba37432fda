"""The one gate every model call passes through: replay, budget, limits, retries, recording.

A step is identified by a stable key (`i2/c07/image`). If the run's log already holds that key, the gate
answers from the log and the provider is never asked: this is how resume avoids paying twice. Otherwise
the call waits for its service's limiter, runs, is retried on transient failures, and its answer is
appended to the log the moment it arrives.

Every answer that arrives is paid for, usable or not. An attempt that fails with a usage (a picture that
does not decode, text that breaks its schema) is settled at its real cost and logged at once as an
`attempt_failed` event with its usage and cost, so the budget holds it, the log's spend counts it and a
resume knows it. Reserves and the pledges that keep a paid picture's judges affordable follow the rules
in `costs`.
"""

from __future__ import annotations

import asyncio
import contextlib
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
from beamsearch.events import AttemptFailed, Event, Step, StepFailure, UsageRecord
from beamsearch.limits import RetryPolicy, ServiceLimiter
from beamsearch.providers.base import Usage
from beamsearch.ratelimit import RateAdvice


@dataclass
class StepAnswer:
    """What one successful attempt produced: a JSON-able result (what replay returns), its usage and
    provider metadata worth keeping (latency drawn, simulator truth, revised prompt, ...)."""

    result: dict[str, Any]
    usage: Usage | None = None
    meta: dict[str, Any] = field(default_factory=dict)


Attempt = Callable[[], Awaitable[StepAnswer]]
Record = Callable[[Event], None]


def lane_of(key: str) -> str:
    """`i0/c03/judge_alignment` -> `i0/c03`: the steps of one lane share the key's head."""
    return key.rsplit("/", 1)[0]


@dataclass
class Call:
    """One step being asked live: what it reserves each attempt, and for which lane's judges."""

    key: str
    service: str
    model: str
    limiter: ServiceLimiter
    estimate: float  # this call's own reserve
    ahead: list[float]  # the reserves of the judges that must follow it (an image), held as a pledge
    attempt: Attempt
    waited: float = 0.0  # seconds its attempts queued at our own limiter (not the server's time)


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

    def stop(self, reason: BeamsearchError) -> None:
        """Refuse every new call from now on (the run is ending: a full disk, say)."""
        self._stop(reason)

    async def call(
        self,
        key: str,
        service: str,
        attempt: Attempt,
        still_valid: Callable[[dict[str, Any]], bool] | None = None,
        inputs: str | None = None,
        judges: int = 0,
    ) -> dict[str, Any]:
        """Answer step `key`: from the log if it is there (and `still_valid` agrees), else live.

        `inputs` fingerprints what the step was asked (prompt, images). A recorded answer to other inputs
        is not this step's answer any more (an image redone after its file went missing, and everything
        that follows from it), so the step runs live. A step that finally failed is recorded too, and a
        settled failure (see `failed`) fails again on replay instead of being asked again. `judges` is the
        number of vision calls that must follow this one (an image's judges): they are reserved with it."""
        lane = lane_of(key)
        recorded = self.recorded.get(key)
        if (recorded is not None and _same_inputs(recorded.inputs, inputs)
                and (still_valid is None or still_valid(recorded.result))):
            self.replayed[service] += 1
            if service == "vision":
                self.budget.release(self.budget.redeem(lane) or 0.0)
            return recorded.result
        failure = self.failed.get(key)
        if failure is not None and _same_inputs(failure.inputs, inputs):
            self.replayed[service] += 1
            self.budget.forfeit(lane)
            raise StepFailed(failure.error)
        live = Call(key, service, self.models.get(service, ""), self.limiters[service], self._reserve(service),
                    [self._reserve("vision")] * judges, attempt)
        started = time.monotonic()
        try:
            try:
                answer, number = await self._attempt(live, 1), 1
            except RetryableError as first:
                answer, number = await self._retry(live, first)
        except CallError as exc:  # this step is over: its lane fails, and the log says so
            self.budget.forfeit(lane)
            failed = StepFailure(key=key, service=service, error=exc.message, kind=type(exc).__name__, inputs=inputs)
            self._record(failed)
            self.failed[key] = failed
            raise
        cost = self._cost(answer.usage)
        self.budget.settle(live.estimate, service, cost)
        self.budget.observe(service, live.model, cost)
        if live.ahead:
            self.budget.hold(lane, live.ahead)  # still reserved: now the pledge of this picture's judges
        waited = round(live.waited, 4)
        step = Step(key=key, service=service, result=answer.result,
                    usage=UsageRecord(**answer.usage.to_dict()) if answer.usage else None, cost=cost, attempts=number,
                    elapsed=round(time.monotonic() - started - waited, 4), waited=waited, meta=answer.meta,
                    inputs=inputs)
        self._record(step)
        self.recorded[key] = step
        return answer.result

    def _reserve(self, service: str) -> float:
        model = self.models.get(service, "")
        return self.budget.reserve_for(service, model, typical_cost(service, model, self.prices))

    def _cost(self, usage: Usage | None) -> float:
        """Dollars as the log keeps them (rounded), so the budget's figure is the log's figure."""
        return round(cost_of(usage, self.prices), 8) if usage is not None else 0.0

    def forfeit(self, key: str) -> None:
        """The picture of `key`'s lane will not be judged (its prompt was refused): free its judges' share."""
        self.budget.forfeit(lane_of(key))

    def _backoff(self, limiter: ServiceLimiter, attempt_number: int, error: BaseException | None) -> float:
        delay = self.policy.delay(attempt_number, error)
        if isinstance(error, RetryableError) and error.pause_service:
            limiter.pause(delay)  # a 429 holds the whole service, so lanes back off together
        return delay

    async def _retry(self, live: Call, first: RetryableError) -> tuple[StepAnswer, int]:
        """Attempts 2 to `max_attempts`, through tenacity. The first attempt runs outside it because
        tenacity's set-up per call (it inspects every hook on each round) cost a tenth of the engine's CPU
        per candidate at N=256, and nearly every call succeeds at once."""
        limit = self.policy.max_attempts
        if limit <= 1:
            raise StepFailed(f"{live.service} call failed after {limit} attempts: {first.message}") from first
        self.retries += 1
        await asyncio.sleep(self._backoff(live.limiter, 1, first))

        def wait(state: RetryCallState) -> float:
            return self._backoff(live.limiter, state.attempt_number + 1,
                                 state.outcome.exception() if state.outcome else None)

        def before_sleep(state: RetryCallState) -> None:
            self.retries += 1

        retrying = AsyncRetrying(stop=stop_after_attempt(limit - 1), wait=wait,
                                 retry=retry_if_exception_type(RetryableError), before_sleep=before_sleep, reraise=True)
        try:
            async for trial in retrying:
                with trial:
                    answer = await self._attempt(live, trial.retry_state.attempt_number + 1)
        except RetryableError as exc:
            raise StepFailed(f"{live.service} call failed after {limit} attempts: {exc.message}") from exc
        return answer, retrying.statistics.get("attempt_number", 1) + 1

    def _admit(self, live: Call, number: int) -> tuple[float, bool]:
        """Reserve this attempt's share of the budget (or raise the run's stop): what was reserved, and
        whether it is a pledged judge.

        The first attempt of a judge whose picture is paid takes its share of that picture's pledge and is
        let through even after a budget stop; every other attempt must fit under the limit."""
        pledge = self.budget.redeem(lane_of(live.key)) if live.service == "vision" and number == 1 else None
        if self.stop_reason is not None and not (pledge is not None and isinstance(self.stop_reason, BudgetExhausted)):
            if pledge is not None:
                self.budget.release(pledge)
            raise self.stop_reason
        if pledge is not None:
            self.budget.release(pledge)
            self.budget.force(live.estimate)
            return live.estimate, True
        wanted = live.estimate + sum(live.ahead)
        try:
            self.budget.reserve(wanted, waiting=True)
        except BudgetExhausted as exc:
            raise self._stop(exc) from None
        return wanted, False

    def _recheck(self, live: Call, held: float) -> float:
        """The call starts now: its reserve as the budget knows it now (see `Budget.recheck`), unless the
        run has stopped meanwhile."""
        if self.stop_reason is not None:
            self.budget.unwait(held)
            raise self.stop_reason
        live.estimate = max(live.estimate, self._reserve(live.service))
        live.ahead = [max(unit, self._reserve("vision")) for unit in live.ahead]
        try:
            return self.budget.recheck(held, live.estimate + sum(live.ahead))
        except BudgetExhausted as exc:  # `held` is released by the caller, as for any failed attempt
            raise self._stop(exc) from None

    async def _attempt(self, live: Call, number: int) -> StepAnswer:
        """One attempt: reserve budget, wait for the service's limiter, call. On success the reservation
        is settled by the caller; on a failure it is released here, or settled at the real cost of an
        answer that arrived and was not usable (and that cost is logged).

        The attempt's timeout starts once the limiter has let it through: time queued at our own limiter
        is not the server's (it is added to `live.waited`, which the step records apart). The server's
        rate-limit advice, on an answer or on a 429, goes back to the limiter."""
        held, pledged = self._admit(live, number)
        waiting = not pledged
        service = live.service
        queued = time.monotonic()
        began: float | None = None
        try:
            async with live.limiter.slot():
                began = time.monotonic()
                live.waited += began - queued
                if waiting:
                    waiting = False
                    held = self._recheck(live, held)
                elif self.stop_reason is not None and not isinstance(self.stop_reason, BudgetExhausted):
                    raise self.stop_reason
                self.attempts[service] += 1
                self.live_calls[service] += 1
                answer = await self._timed(live)
            live.limiter.advise(RateAdvice.from_meta(answer.meta.get("ratelimit"), time.monotonic()), began)
        except RetryableError as exc:
            if began is not None:
                live.limiter.advise(exc.ratelimit, began)
            self._failed(live, number, exc, held, final=number >= self.policy.max_attempts)
            raise
        except (AuthError, BeamsearchError) as exc:
            self._failed(live, number, exc, held, final=True)
            raise self._stop(RunFailed(exc.message) if isinstance(exc, AuthError) else exc) from exc
        except CallError as exc:
            self._failed(live, number, exc, held, final=True)
            raise
        except BaseException:
            self.budget.release(held)
            raise
        finally:
            if waiting:  # it never started: a cancellation while it waited for the limiter
                self.budget.unwait(held)
        return answer

    async def _timed(self, live: Call) -> StepAnswer:
        """The call itself, within the service's timeout (the longest one attempt may take)."""
        limit = self.timeouts.get(live.service)
        if limit is None:
            return await live.attempt()
        try:
            return await asyncio.wait_for(live.attempt(), limit)
        except TimeoutError:
            raise RetryableError(f"no whole answer within {limit:g} s") from None

    def _failed(self, live: Call, number: int, exc: BaseException, held: float, final: bool) -> None:
        """A failed attempt: its reservation released, or settled at the cost of the answer it threw away;
        a paid one is logged (the budget, the log's spend and a resume all know it), any retryable one is
        announced."""
        usage = getattr(exc, "usage", None)
        message = getattr(exc, "message", str(exc))
        if usage is None:
            self.budget.release(held)
            if isinstance(exc, RetryableError):
                self._notify(AttemptFailed(key=live.key, service=live.service, attempt=number, error=message,
                                           final=final))
            return
        cost = self._cost(usage)
        self.budget.settle(held, live.service, cost)
        self.budget.observe(live.service, live.model, cost)
        event = AttemptFailed(key=live.key, service=live.service, attempt=number, error=message, final=final,
                              usage=UsageRecord(**usage.to_dict()), cost=cost)
        with contextlib.suppress(BeamsearchError):  # a full disk: the run is stopping with that error anyway
            self._record(event)


def _same_inputs(recorded: str | None, inputs: str | None) -> bool:
    """A recorded event answers these inputs, or cannot tell (a log written before inputs were kept)."""
    return inputs is None or recorded in (None, inputs)
