"""Every event of a batch's own log, `batch.jsonl`, defined once, and the one fold of that log.

The batch log says which run folder belongs to which idea and how each idea's sessions ended; the ideas'
own work is in their run folders. It is append-only and flushed per line like a run's log, so a batch
killed at any instant leaves a log whose every line can be trusted (a torn last line is skipped). Ideas
are named by their number in the ideas file (1-based), as every message about them is.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, TypeAdapter, ValidationError

from beamsearch.events import Event, NotJson, OtherEvent, describe


class BatchStarted(Event):
    """A session of the batch began (the first, or a resume)."""

    type: Literal["batch_started"] = "batch_started"
    version: str = ""
    resumed: bool = False
    ideas: int = 0
    concurrency: int = 1  # ideas run at once
    spent_usd: float = 0.0  # what the batch had spent before this session


class IdeaStarted(Event):
    """An idea's session began in its run folder (a folder name inside the batch folder)."""

    type: Literal["idea_started"] = "idea_started"
    idea: int
    run: str
    resumed: bool = False


class IdeaFinished(Event):
    """An idea's session ended: how, what it found, and what the idea has cost in all (past included)."""

    type: Literal["idea_finished"] = "idea_finished"
    idea: int
    run: str | None = None  # None when no run folder could be opened for it
    status: str  # done, stopped or failed
    reason: str = ""
    budget: bool = False  # stopped because the batch's budget was reached
    cost_usd: float = 0.0
    cost_by_service: dict[str, float] = Field(default_factory=dict)
    best_id: str | None = None
    best_total: float | None = None
    best_image: str | None = None  # relative to the run folder
    iterations_done: int = 0


class BatchFinished(Event):
    type: Literal["batch_finished"] = "batch_finished"
    status: str  # done, stopped or failed
    reason: str = ""
    done: int = 0
    failed: int = 0
    stopped: int = 0
    not_started: int = 0
    cost_usd: float = 0.0


class BatchResult(Event):
    """The last line of `batch --json` (printed, not logged): where the batch is, how it ended, its exit code."""

    type: Literal["batch_result"] = "batch_result"
    batch_dir: str
    exit_code: int
    status: str
    reason: str = ""
    counts: dict[str, int] = Field(default_factory=dict)
    cost_usd: float = 0.0


BATCH_TYPES: dict[str, type[Event]] = {cls.model_fields["type"].default: cls
                                       for cls in (BatchStarted, IdeaStarted, IdeaFinished, BatchFinished)}


def _tag(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return kind if kind in BATCH_TYPES else "other"


BatchEvent = Annotated[
    Annotated[BatchStarted, Tag("batch_started")] | Annotated[IdeaStarted, Tag("idea_started")]
    | Annotated[IdeaFinished, Tag("idea_finished")] | Annotated[BatchFinished, Tag("batch_finished")]
    | Annotated[OtherEvent, Tag("other")],
    Discriminator(_tag),
]
_ADAPTER = TypeAdapter(BatchEvent)


def parse_batch_line(line: bytes | str) -> Event:
    """One line of batch.jsonl as its event; `NotJson` for a line that is no JSON object, `ValueError`
    naming the field of an object that is no valid event (as `events.parse_line` does for runs)."""
    try:
        return _ADAPTER.validate_json(line, strict=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] in ("json_invalid", "model_type", "json_type"):
            raise NotJson(first["msg"]) from None
        raise ValueError(describe(first, line)) from None


def batch_event_from_data(data: Any) -> Event:
    """A batch event from its JSON data (already parsed), checked as `parse_batch_line` checks a line."""
    return _ADAPTER.validate_python(data, strict=True)


# --- the fold ---------------------------------------------------------------------------------------

STARTED = "started"  # an idea whose last session has no idea_finished: running, or killed


@dataclass
class IdeaState:
    """What the batch log says of one idea."""

    number: int
    run: str | None = None
    status: str = "not started"  # not started, started, done, stopped, failed
    reason: str = ""
    finished: IdeaFinished | None = None
    sessions: int = 0


@dataclass
class BatchView:
    ideas: dict[int, IdeaState] = field(default_factory=dict)
    sessions: int = 0
    last_start: BatchStarted | None = None
    last_finish: BatchFinished | None = None

    def idea(self, number: int) -> IdeaState:
        return self.ideas.setdefault(number, IdeaState(number))

    def apply(self, event: Event) -> None:
        if isinstance(event, IdeaStarted):
            state = self.idea(event.idea)
            state.run, state.status, state.reason, state.finished = event.run, STARTED, "", None
            state.sessions += 1
        elif isinstance(event, IdeaFinished):
            state = self.idea(event.idea)
            state.run = event.run if event.run is not None else state.run
            state.status, state.reason, state.finished = event.status, event.reason, event
        elif isinstance(event, BatchStarted):
            self.sessions += 1
            self.last_start, self.last_finish = event, None
        elif isinstance(event, BatchFinished):
            self.last_finish = event


def fold_batch(events: Iterable[Event]) -> BatchView:
    view = BatchView()
    for event in events:
        view.apply(event)
    return view
