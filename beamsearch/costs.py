"""Prices and spending: usage -> dollars, and the budget that stops new calls before it is passed.

Prices are per million tokens (text in/out, image tokens in/out) or per image, keyed by model name; the
built-in table ships as `prices.yaml` and a user's table overrides it entry by entry.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from beamsearch.errors import BudgetExhausted, SettingsError
from beamsearch.providers.base import Usage


def load_prices(override: Path | None = None) -> dict[str, dict[str, float]]:
    table = yaml.safe_load(resources.files("beamsearch").joinpath("prices.yaml").read_text(encoding="utf-8"))
    if override is not None:
        try:
            extra = yaml.safe_load(Path(override).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise SettingsError(f"The price table {override} cannot be read: {exc}.") from None
        if not isinstance(extra, dict):
            raise SettingsError(f"The price table {override} must map model names to prices.")
        for model, entry in extra.items():
            table[model] = {**table.get(model, {}), **entry}
    return table


def price_of(prices: dict[str, dict[str, float]], model: str) -> dict[str, float]:
    """The entry for `model`, or for the longest known prefix of it (dated snapshots share a price)."""
    if model in prices:
        return prices[model]
    prefixes = [name for name in prices if model.startswith(name)]
    return prices[max(prefixes, key=len)] if prefixes else {}


def cost_of(usage: Usage, prices: dict[str, dict[str, float]]) -> float:
    entry = price_of(prices, usage.model)
    million = 1_000_000
    return (
        usage.input_tokens * entry.get("input", 0.0) / million
        + usage.output_tokens * entry.get("output", 0.0) / million
        + usage.image_input_tokens * entry.get("image_input", entry.get("input", 0.0)) / million
        + usage.image_output_tokens * entry.get("image_output", 0.0) / million
        + usage.images * entry.get("per_image", 0.0)
    )


def typical_cost(service: str, model: str, prices: dict[str, dict[str, float]]) -> float:
    """A conservative guess of one call's cost before it is made, for the budget's in-flight reserve."""
    typical = {
        "text": Usage(model=model, input_tokens=600, output_tokens=300),
        "vision": Usage(model=model, input_tokens=500, output_tokens=200, image_input_tokens=800),
        "image": Usage(model=model, input_tokens=150, image_output_tokens=1100, images=1),
    }[service]
    return cost_of(typical, prices)


class Budget:
    """Tracks dollars spent and reserved by calls in flight; refuses a call that could pass the limit."""

    def __init__(self, limit_usd: float | None) -> None:
        self.limit = limit_usd
        self.spent = 0.0
        self.reserved = 0.0
        self.by_service: dict[str, float] = {}

    def reserve(self, estimate: float) -> None:
        if self.limit is not None and self.spent + self.reserved + estimate > self.limit:
            raise BudgetExhausted(
                f"The budget of ${self.limit:.2f} is reached (spent ${self.spent:.4f}); "
                "resume with a higher --max-cost to go on."
            )
        self.reserved += estimate

    def settle(self, estimate: float, service: str, actual: float) -> None:
        self.reserved = max(0.0, self.reserved - estimate)
        self.add(service, actual)

    def release(self, estimate: float) -> None:
        self.reserved = max(0.0, self.reserved - estimate)

    def add(self, service: str, actual: float) -> None:
        self.spent += actual
        self.by_service[service] = self.by_service.get(service, 0.0) + actual

    def summary(self) -> dict[str, Any]:
        return {"total_usd": round(self.spent, 6), "by_service": {k: round(v, 6) for k, v in self.by_service.items()}}
