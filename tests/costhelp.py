"""A paying simulator for budget tests: every answer costs a known multiple of the typical estimate,
some answers can be spoiled (paid for, unusable), and every call's start, end and cost is recorded, so a
test can compare what was paid with what the run says it spent."""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections import Counter
from typing import Any

from beamsearch.costs import Budget, cost_of, load_prices, typical_usage
from beamsearch.providers.base import (
    ImageRequest,
    ImageResult,
    Providers,
    TextRequest,
    TextResult,
    Usage,
    VisionRequest,
)
from beamsearch.providers.sim import Simulator


def scaled(usage: Usage, factor: int) -> Usage:
    return Usage(model=usage.model, input_tokens=usage.input_tokens * factor, output_tokens=usage.output_tokens * factor,
                 image_input_tokens=usage.image_input_tokens * factor,
                 image_output_tokens=usage.image_output_tokens * factor, images=usage.images * factor)


class Paying:
    """The simulator, billing every call `factor` times the typical call of its service (so its cost is
    exactly `factor` times the budget's typical estimate); image answers are spoiled at `spoil_rate`."""

    def __init__(self, simulator: Simulator, factor: int = 1, spoil_rate: float = 0.0) -> None:
        self.sim = simulator
        self.factor = factor
        self.spoil_rate = spoil_rate
        self.prices = load_prices()
        self.starts: list[tuple[float, str]] = []
        self.ends: list[tuple[float, str, float]] = []
        self.in_flight: Counter[str] = Counter()
        self.seen: Counter[str] = Counter()
        self.spoiled = 0

    def _usage(self, service: str) -> Usage:
        return scaled(typical_usage(service, f"sim-{service}"), self.factor)

    async def _call(self, service: str, key: str, call: Any) -> Any:
        self.starts.append((time.monotonic(), key))
        self.in_flight[key] += 1
        try:
            answer = await call
        finally:
            self.in_flight[key] -= 1
        usage = self._usage(service)
        answer = dataclasses.replace(answer, usage=usage)
        self.ends.append((time.monotonic(), key, cost_of(usage, self.prices)))
        return answer

    async def complete(self, request: TextRequest) -> TextResult:
        return await self._call("text", request.key, self.sim.complete(request))

    async def judge(self, request: VisionRequest) -> TextResult:
        return await self._call("vision", request.key, self.sim.judge(request))

    async def generate(self, request: ImageRequest) -> ImageResult:
        answer = await self._call("image", request.key, self.sim.generate(request))
        self.seen[request.key] += 1
        draw = hashlib.sha256(f"{request.key}#{self.seen[request.key]}".encode()).digest()[0] / 256
        if draw < self.spoil_rate:
            self.spoiled += 1
            return dataclasses.replace(answer, data=answer.data[: len(answer.data) // 2])  # cut short: unusable
        return answer

    @property
    def paid(self) -> float:
        return sum(cost for _, _, cost in self.ends)

    def providers(self) -> Providers:
        return Providers(text=self, image=self, vision=self, labels=dict.fromkeys(("text", "image", "vision"), "sim"))


class Watched(Budget):
    """A budget that notes the moment its spending first passed the limit (`reached`, time.monotonic()),
    what had been spent just before, and the cost of the answer that passed it."""

    def __init__(self, limit_usd: float | None) -> None:
        super().__init__(limit_usd)
        self.reached: float | None = None
        self.spent_before = 0.0
        self.crossing = 0.0

    def add(self, service: str, actual: float) -> None:
        before = self.spent
        super().add(service, actual)
        if self.reached is None and self.limit is not None and self.spent > self.limit:
            self.reached = time.monotonic()
            self.spent_before, self.crossing = before, actual
