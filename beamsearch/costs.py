"""Prices and spending: usage -> dollars, and the budget that stops new calls before it is passed.

Prices are per million tokens (text in/out, image tokens in/out) or per image, keyed by model name; the
built-in table ships as `prices.yaml` and a user's table overrides it entry by entry. Both are validated
when loaded, so a mistake in them is one sentence before the first call, never a crash after a paid one.

The budget's rules (`Budget`):

* Every answer that arrives is counted, usable or not: a picture that does not decode or text that is not
  the JSON asked for was paid for, so a failed attempt that carries a usage is settled at its real cost
  (and logged, see `gate`), never released as if it had been free.
* A call starts only if what is spent, plus what the calls in flight have reserved, plus its own reserve
  fits under the limit, checked when it is admitted and again when it really starts (after waiting for
  its service's limiter, when earlier answers may have cost more than reserved). Its reserve is the larger of its typical cost (`typical_cost`) and the most a call
  of that service and model has cost so far: when calls cost more than the typical estimate (high quality,
  larger sizes), the reserve learns from the first answers instead of letting every later wave overshoot.
* A picture is worth paying for only if it can be judged. An image call therefore reserves its judges too
  (their number times the vision reserve) and starts only if all of that fits; when the picture arrives,
  the judges' part stays reserved as a *pledge* of its lane, and each judge of that picture takes its share
  of the pledge: it is never refused for budget, even after the budget has stopped new work. So a budget
  stop never leaves a paid picture unjudged, and the cap is passed by at most what calls already admitted
  (in flight, or pledged to a picture already paid) cost beyond their reserves.
* There is one spend figure: the sum of the costs in the log. The stop message, the result table, the
  report, `summary.json` and `run_finished` all give that figure (`budget_reached` words the message once
  the session is over, when every call in flight has settled).
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError

from beamsearch.errors import BudgetExhausted, SettingsError
from beamsearch.providers.base import Usage
from beamsearch.roles import ROLES, billed_model

SHIPPED = "the built-in price table (beamsearch/prices.yaml)"
# a finite YAML number of dollars: `true`, "0.04" and .nan are mistakes, not prices
Dollars = Annotated[float, Strict(), Field(ge=0, allow_inf_nan=False)]


class PriceEntry(BaseModel):
    """One model's prices. Every field is optional (an override may change one price and keep the rest);
    an unknown name is refused, because a misspelt `per_imge` would otherwise price the model at $0."""

    model_config = ConfigDict(extra="forbid")

    input: Dollars | None = None
    output: Dollars | None = None
    image_input: Dollars | None = None
    image_output: Dollars | None = None
    per_image: Dollars | None = None


PRICE_NAMES = ", ".join(PriceEntry.model_fields)


def _checked_table(data: Any, source: str) -> dict[str, dict[str, float]]:
    """A price table as plain floats, or one sentence naming the file, the model and what is wrong, so a
    mistake stops the run before its first call instead of breaking (or mispricing) a paid one."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsError(f"The price table {source} must map model names to prices, not a {type(data).__name__}.")
    table: dict[str, dict[str, float]] = {}
    for model, entry in data.items():
        if not isinstance(entry, dict):
            raise SettingsError(f"The price table {source} gives model '{model}' the price {_shown(entry)}, but each "
                                f"model needs a mapping of prices in dollars ({PRICE_NAMES}), like {{per_image: 0.04}}.")
        try:
            checked = PriceEntry.model_validate(entry)
        except ValidationError as exc:
            error = exc.errors()[0]
            name = ".".join(str(part) for part in error["loc"][:1])
            if error["type"] == "extra_forbidden":
                problem = f"an unknown price '{name}' (known: {PRICE_NAMES})"
            elif error["type"] in ("greater_than_equal", "finite_number"):
                problem = f"a '{name}' price that is negative or not finite ({_shown(error['input'])})"
            else:
                problem = f"a '{name}' price that is not a number of dollars ({_shown(error['input'])})"
            raise SettingsError(f"The price table {source} gives model '{model}' {problem}.") from None
        table[str(model)] = {k: float(v) for k, v in checked.model_dump(exclude_none=True).items()}
    return table


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def load_prices(override: Path | None = None, *, check: Any = None,
                warnings: list[str] | None = None) -> dict[str, dict[str, float]]:
    """The built-in table, overridden entry by entry (price by price) by the user's, both validated.

    With `check` (a run's Settings) the table is also checked against the run's models before any call:
    a budget cannot hold over calls it cannot price, so with a `max_cost_usd` the user set, an unpriced
    model refuses the run; under the default budget (local servers are often unpriced) or none, the run
    goes on, and `warnings` gets a sentence saying its cost (and the default budget) leave them out.
    Each table is read and validated once per process (a run asks for it before its folder is made and
    again when it starts); the caller gets its own copy."""
    table = {model: dict(entry) for model, entry in _shipped_table().items()}
    if override is not None:
        for model, entry in _override_table(*_file_identity(Path(override))).items():
            table[model] = {**table.get(model, {}), **entry}
    if check is not None:
        _check_models(check, table, warnings)
    return table


@functools.cache
def _shipped_table() -> dict[str, dict[str, float]]:
    shipped = yaml.safe_load(resources.files("beamsearch").joinpath("prices.yaml").read_text(encoding="utf-8"))
    return _checked_table(shipped, SHIPPED)


def _file_identity(path: Path) -> tuple[Path, int | None, int | None]:
    """The path with its modification time and size, so an edited price file is read again."""
    try:
        stat = path.stat()
    except OSError:
        return path, None, None  # reading it will say what is wrong
    return path, stat.st_mtime_ns, stat.st_size


@functools.lru_cache(maxsize=8)
def _override_table(override: Path, mtime_ns: int | None, size: int | None) -> dict[str, dict[str, float]]:
    try:
        extra = yaml.safe_load(Path(override).read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"The price table {override} cannot be read: {exc.strerror or exc}.") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise SettingsError(f"The price table {override} is not valid YAML{where}.") from None
    return _checked_table(extra, str(override))


def unpriced_models(settings: Any, prices: dict[str, dict[str, float]]) -> list[str]:
    """Models of real (non-simulated) roles that the price table does not know: their calls count as $0."""
    return sorted({billed_model(settings, s) for s in ROLES
                   if settings.role_provider(s) != "sim" and not price_of(prices, billed_model(settings, s))})


def _check_models(settings: Any, prices: dict[str, dict[str, float]], warnings: list[str] | None) -> None:
    unknown = unpriced_models(settings, prices)
    if not unknown:
        return
    names = ", ".join(unknown)
    budget = settings.budget_usd()
    if budget is not None and not settings.budget_is_default:
        raise SettingsError(f"No price is known for {names}, so --max-cost cannot be enforced: add "
                            f"{'it' if len(unknown) == 1 else 'them'} to a price table with `prices: FILE`, "
                            "or drop --max-cost.")
    if warnings is not None:
        left_out = "the cost shown leaves them out" if budget is None else \
            f"the cost shown and the default budget (${budget:.2f}) leave them out"
        warnings.append(f"No price is known for {names}; their calls count as $0, so {left_out} (add them to a "
                        "price table with `prices: FILE`).")


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


def typical_usage(service: str, model: str) -> Usage:
    """What one call of `service` typically consumes: the budget's in-flight reserve, and the stand-in
    for an answer that came without a usage block (so that call is not counted as free)."""
    return {
        "text": Usage(model=model, input_tokens=600, output_tokens=300),
        "vision": Usage(model=model, input_tokens=500, output_tokens=200, image_input_tokens=800),
        "image": Usage(model=model, input_tokens=150, image_output_tokens=1100, images=1),
    }[service]


def typical_cost(service: str, model: str, prices: dict[str, dict[str, float]]) -> float:
    """A conservative guess of one call's cost before it is made, for the budget's in-flight reserve."""
    return cost_of(typical_usage(service, model), prices)


def budget_reached(limit: float, spent: float) -> BudgetExhausted:
    """The stop of a run whose budget is reached, with the run's one spend figure."""
    error = BudgetExhausted(f"The budget of ${limit:.2f} is reached (spent ${spent:.4f}); "
                            "resume with a higher --max-cost to go on.")
    error.limit = limit  # type: ignore[attr-defined]
    return error


class Budget:
    """Dollars spent, reserved by calls in flight and pledged to the judges of paid pictures; refuses a
    call that could pass the limit (the rules are in this module's docstring)."""

    def __init__(self, limit_usd: float | None) -> None:
        self.limit = limit_usd
        self.spent = 0.0
        self.reserved = 0.0
        self.waiting = 0.0  # the part of `reserved` held by calls admitted but not yet started
        self.by_service: dict[str, float] = {}
        self.highest: dict[tuple[str, str], float] = {}  # (service, model) -> the most one call has cost
        self.pledges: dict[str, list[float]] = {}  # lane -> the reserves still held for its judges

    def reserve_for(self, service: str, model: str, typical: float) -> float:
        """What a call of `service` and `model` reserves: its typical cost, or more if calls cost more."""
        return max(typical, self.highest.get((service, model), 0.0))

    def observe(self, service: str, model: str, cost: float) -> None:
        key = (service, model)
        self.highest[key] = max(self.highest.get(key, 0.0), cost)

    def reserve(self, estimate: float, waiting: bool = False) -> None:
        """Admit a call reserving `estimate`; `waiting`: it has yet to start (see `recheck`)."""
        if self.limit is not None and self.spent + self.reserved + estimate > self.limit:
            raise budget_reached(self.limit, self.spent)
        self.reserved += estimate
        if waiting:
            self.waiting += estimate

    def recheck(self, held: float, wanted: float) -> float:
        """When a call admitted earlier really starts (it may have waited for its service's limiter): raise
        its reserve to `wanted` if calls have since cost more, and refuse it if that no longer fits beside
        what is spent and what the calls already started hold (calls still waiting behind it are checked
        when their turn comes); the new amount held."""
        self.waiting = max(0.0, self.waiting - held)
        extra = max(0.0, wanted - held)
        if self.limit is not None and self.spent + self.reserved - self.waiting + extra > self.limit:
            raise budget_reached(self.limit, self.spent)
        self.reserved += extra
        return held + extra

    def unwait(self, held: float) -> None:
        """An admitted call gave up before it started (a stop, a cancellation)."""
        self.waiting = max(0.0, self.waiting - held)

    def force(self, estimate: float) -> None:
        """Reserve without the check: a call the budget already admitted (a pledged judge)."""
        self.reserved += estimate

    def settle(self, estimate: float, service: str, actual: float) -> None:
        self.reserved = max(0.0, self.reserved - estimate)
        self.add(service, actual)

    def release(self, estimate: float) -> None:
        self.reserved = max(0.0, self.reserved - estimate)

    def add(self, service: str, actual: float) -> None:
        self.spent += actual
        self.by_service[service] = self.by_service.get(service, 0.0) + actual

    # --- pledges: the judges of a picture already paid for ------------------------------------------

    def hold(self, lane: str, units: list[float]) -> None:
        """Keep `units` (already reserved) for the judges of `lane`'s picture."""
        self.forfeit(lane)
        if units:
            self.pledges[lane] = list(units)

    def redeem(self, lane: str) -> float | None:
        """Take one judge's share of `lane`'s pledge (it stays reserved until the caller releases it)."""
        units = self.pledges.get(lane)
        if not units:
            return None
        unit = units.pop()
        if not units:
            del self.pledges[lane]
        return unit

    def forfeit(self, lane: str) -> None:
        """The lane will not judge its picture after all (a judge failed, the prompt was refused)."""
        self.release(sum(self.pledges.pop(lane, [])))

    def summary(self) -> dict[str, Any]:
        return {"total_usd": round(self.spent, 6), "by_service": {k: round(v, 6) for k, v in self.by_service.items()}}
