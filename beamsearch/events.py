"""Every event of a run, defined once: what the log holds and what listeners hear.

An event is a pydantic model with a `type` tag and a time stamp `ts`. *Logged* events (here) are the lines
of `events.jsonl` (the source of truth of a run); *progress* events (`progress.py`: stages, attempts, the
ranking's announcement) go only to listeners: the display, the web view, `--json`, tests and benchmarks.

Writers build events only through these classes; the store writes them with `to_line` and reads each
line back with `parse_line`, which names the line and the field of a bad one. Every model keeps fields it
does not know (`extra="allow"`), and a line of an unknown type is kept as an `OtherEvent`, so a log
written by a newer beamsearch is still read by an older one, and new judging modes can add fields.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    field_serializer,
    model_validator,
)

CHECKLIST_KEY = "run/checklist"  # the step key of the run's one checklist


def now() -> float:
    return round(time.time(), 3)


class Event(BaseModel):
    """What every event has: its type and when it happened (Unix seconds)."""

    model_config = ConfigDict(extra="allow")

    type: str
    ts: float = Field(default_factory=now)

    def to_line(self) -> str:
        """The event as one line of JSON (compact, UTF-8 kept as text), without the newline."""
        return self.model_dump_json()

    def data(self) -> dict[str, Any]:
        """The event as plain JSON data (for `--json`, the web view, and comparisons)."""
        return self.model_dump(mode="json")


# --- logged events --------------------------------------------------------------------------------


class RunStarted(Event):
    """A session began. `shaping` holds the past-shaping settings it followed (`precedence.PAST_KEYS`), so
    that a run.yaml edited afterwards is refused on resume (None in logs written before it was kept);
    `unpriced` the models whose cost is unknown (None in logs written before it was kept)."""

    type: Literal["run_started"] = "run_started"
    version: str = ""
    resumed: bool = False
    providers: dict[str, str] = Field(default_factory=dict)
    spent_usd: float = 0.0
    shaping: dict[str, Any] | None = None
    unpriced: list[str] | None = None  # models the price table did not know: their calls counted as $0


class UsageRecord(BaseModel):
    """What one call consumed, as the log keeps it (zero counts may be left out)."""

    model_config = ConfigDict(extra="allow")

    model: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    image_input_tokens: int = 0
    image_output_tokens: int = 0
    images: int = 0


class Step(Event):
    """A model call that finished: its answer (what replay returns), usage, cost and how it went."""

    type: Literal["step"] = "step"
    key: str
    service: str
    result: dict[str, Any]
    usage: UsageRecord | None = None
    cost: float = 0.0
    attempts: int = 1
    elapsed: float = 0.0  # seconds from the call to its answer, less `waited` (retries and backoff included)
    waited: float = 0.0  # seconds its attempts queued at beamsearch's own limiter (0 in old logs)
    meta: dict[str, Any] = Field(default_factory=dict)
    inputs: str | None = None  # a fingerprint of what the step was asked (None in old logs)

    @field_serializer("usage")
    def _usage_without_zeros(self, usage: UsageRecord | None) -> dict[str, Any] | None:
        """Counts a call did not use are left out, as the providers report them."""
        return None if usage is None else usage.model_dump(exclude_defaults=True) | {"model": usage.model}

    @model_validator(mode="after")
    def _checklist_has_questions(self) -> Step:
        if self.key == CHECKLIST_KEY and not isinstance(self.result.get("questions"), list):
            raise ValueError("the checklist step needs a list of 'questions'")
        return self


class StepFailure(Event):
    """A step that failed for good (retries spent, or an error no retry can fix)."""

    type: Literal["step_failed"] = "step_failed"
    key: str
    service: str
    error: str
    kind: str = ""
    inputs: str | None = None


class AttemptFailed(Event):
    """One attempt of a step failed and may be retried (`final` when it was the last allowed).

    Logged when the failed attempt was paid for (an answer arrived that was not usable): then `usage` and
    `cost` say what it consumed, and the fold counts it in the run's spend. An attempt that got no answer
    (a 429, a timeout) is only announced to listeners."""

    type: Literal["attempt_failed"] = "attempt_failed"
    key: str
    service: str
    attempt: int
    error: str
    final: bool = False
    usage: UsageRecord | None = None
    cost: float = 0.0

    @field_serializer("usage")
    def _usage_without_zeros(self, usage: UsageRecord | None) -> dict[str, Any] | None:
        return None if usage is None else usage.model_dump(exclude_defaults=True) | {"model": usage.model}


class Candidate(Event):
    """A candidate: the engine's working record of one lane, and the event logged once it is scored."""

    type: Literal["candidate"] = "candidate"
    id: str
    iteration: int
    index: int
    parent: str | None = None
    what: str = ""
    how: str = ""
    prompt: str = ""
    image: str | None = None
    revised_prompt: str | None = None
    rephrases: list[str] = Field(default_factory=list)
    alignment: float = 0.0
    aesthetic: float = 0.0
    total: float = 0.0
    alignment_notes: str = ""
    aesthetic_notes: str = ""
    found: list[str] = Field(default_factory=list)
    missing: list[str] = Field(default_factory=list)
    weak: list[str] = Field(default_factory=list)
    critique: str | None = None
    status: str = "pending"
    error: str | None = None
    checks: dict[str, bool] = Field(default_factory=dict)  # checklist question id -> counts as yes
    judge_samples: dict[str, list[float]] = Field(default_factory=dict)  # judge -> its k scores (k > 1)
    judge_spread: dict[str, float] = Field(default_factory=dict)  # judge -> std. dev. of its k scores
    refined: str | None = None  # the dimension its refinement changed: what, how or both (None: expanded)
    judgements: list[tuple[float, float]] = Field(default_factory=list)  # (alignment, aesthetic) per judging

    @property
    def order(self) -> tuple[int, int]:
        """Ties in a ranking go to the earlier candidate: lower iteration, then lower index."""
        return (self.iteration, self.index)

    @property
    def pair(self) -> tuple[str, str]:
        return (self.what, self.how)


class LaneFailed(Event):
    type: Literal["lane_failed"] = "lane_failed"
    id: str
    iteration: int
    parent: str | None = None
    error: str | None = None


class LaneSkipped(Event):
    """A lane whose every variant repeated an earlier prompt: not rendered, not paid for twice."""

    type: Literal["lane_skipped"] = "lane_skipped"
    id: str
    iteration: int
    parent: str | None = None
    repeats: str
    reason: str = ""


class AlignmentFallback(Event):
    """The checklist could not be made after its retries (`alignment: checklist`): alignment is rated (one
    0-100 score per image) for the rest of the run instead of failing every lane. It follows from the
    run's `step_failed` of run/checklist, which a resume repeats (`RunView.settled_failures`)."""

    type: Literal["alignment_fallback"] = "alignment_fallback"
    reason: str
    method: str = "rating"

    @property
    def message(self) -> str:
        return (f"The checklist could not be made ({self.reason.rstrip('.')}); alignment is rated instead "
                "(one 0-100 score per image) for this run.")


class FinalCheck(Event):
    """After the last ranking: the survivors judged once more, and the answer chosen from them."""

    type: Literal["final_check"] = "final_check"
    pool: list[tuple[str, float | None]]
    best: str


class Comparison(BaseModel):
    """One pair of candidates judged in both orders: agreeing orders name a winner, others tie."""

    model_config = ConfigDict(extra="allow")

    pair: tuple[str, str]
    ab: str | None = None
    ba: str | None = None
    agree: bool | None = None
    winner: str | None = None
    loser: str | None = None
    error: str | None = None

    @model_validator(mode="after")
    def _verdicts_for_agreement(self) -> Comparison:
        if self.agree is not None and (self.ab is None or self.ba is None):
            raise ValueError("a comparison that agrees or not needs both verdicts 'ab' and 'ba'")
        return self


class PairwiseRecord(BaseModel):
    """What a pairwise ranking compared, skipped, and concluded."""

    model_config = ConfigDict(extra="allow")

    finalists: list[str] = Field(default_factory=list)
    comparisons: list[Comparison] = Field(default_factory=list)
    skipped: list[dict[str, Any]] = Field(default_factory=list)
    copeland: dict[str, float] = Field(default_factory=dict)
    order: list[str] = Field(default_factory=list)
    pairs: int = 0


class Ranking(Event):
    """The barrier ranked an iteration: the pool best first, the survivors, the failed lanes."""

    type: Literal["ranking"] = "ranking"
    iteration: int
    dimension: str = ""
    pool: list[tuple[str, float | None]]
    survivors: list[str]
    failed: list[str] = Field(default_factory=list)
    skipped: list[str] = Field(default_factory=list)  # lanes not rendered: every variant repeated a prompt
    pairwise: PairwiseRecord | None = None
    best: str | None = None  # the best so far, as the engine decided it (by comparison with pairwise ranking)


class RunFinished(Event):
    type: Literal["run_finished"] = "run_finished"
    status: str = "done"
    reason: str = ""
    cost_usd: float = 0.0


class OtherEvent(Event):
    """A logged line of a type this version does not know: kept, passed over by every reader."""


LOGGED_TYPES: dict[str, type[Event]] = {
    cls.model_fields["type"].default: cls
    for cls in (RunStarted, Step, StepFailure, AttemptFailed, Candidate, LaneFailed, Ranking, RunFinished, LaneSkipped,
                FinalCheck, AlignmentFallback)
}


def _tag(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return kind if kind in LOGGED_TYPES else "other"


LoggedEvent = Annotated[
    Annotated[RunStarted, Tag("run_started")] | Annotated[Step, Tag("step")]
    | Annotated[StepFailure, Tag("step_failed")] | Annotated[AttemptFailed, Tag("attempt_failed")]
    | Annotated[Candidate, Tag("candidate")]
    | Annotated[LaneFailed, Tag("lane_failed")] | Annotated[Ranking, Tag("ranking")]
    | Annotated[RunFinished, Tag("run_finished")] | Annotated[LaneSkipped, Tag("lane_skipped")] | Annotated[FinalCheck, Tag("final_check")]
    | Annotated[AlignmentFallback, Tag("alignment_fallback")]
    | Annotated[OtherEvent, Tag("other")],
    Discriminator(_tag),
]
_LOGGED = TypeAdapter(LoggedEvent)


class NotJson(ValueError):
    """A line that is not a JSON object at all (torn when it is the last line, else corruption)."""


def parse_line(line: bytes | str) -> Event:
    """One line of the log as its event. Raises `NotJson` for a line that is not a JSON object and
    `ValueError` with a sentence naming the field for an object that is not a valid event."""
    try:
        return _LOGGED.validate_json(line, strict=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] in ("json_invalid", "model_type", "json_type"):
            raise NotJson(first["msg"]) from None
        raise ValueError(describe(first, line)) from None


_KINDS = {"float_type": "a number", "int_type": "a whole number", "string_type": "text", "dict_type": "a mapping",
          "list_type": "a list", "tuple_type": "a list of [id, score] pairs", "bool_type": "true or false",
          "int_from_float": "a whole number"}


def describe(error: Any, line: bytes | str) -> str:
    """One pydantic error on a log line as words: which field of which event, and what it must be."""
    loc = [str(part) for part in error["loc"]]
    kind = loc[0] if loc else "?"
    field = next((part for part in loc[1:] if not part.isdigit()), "")
    where = f"'{field}' of a '{kind}' event" if field else f"a '{kind}' event"
    if error["type"] == "missing":
        return f"a '{kind}' event needs '{field}'"
    if error["type"] == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    if error["type"] in _KINDS:
        return f"{where} must be {_KINDS[error['type']]}"
    return f"{where} is not valid ({error['msg'].lower()})"


def __getattr__(name: str) -> Any:
    """Progress events live in `progress`; `from beamsearch.events import StageChanged` still finds them."""
    from beamsearch import progress

    if name in progress.__dict__ and isinstance(progress.__dict__[name], type) or name == "from_data":
        return progress.__dict__[name]
    raise AttributeError(f"module 'beamsearch.events' has no attribute {name!r}")
