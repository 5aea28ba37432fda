"""Progress events: what listeners hear while a run goes on that the log does not keep (a lane's stage,
a failed attempt, the ranking's announcement, the last line of `--json`), and `from_data`, which reads
any event, logged or not, back from its JSON data (for `--json` consumers, the web view and tests)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from beamsearch.events import LOGGED_TYPES, Comparison, Event, OtherEvent


class RunOpened(Event):
    """The first thing listeners hear: the folder this session runs in (a web view attaches to it)."""

    type: Literal["run_opened"] = "run_opened"
    run_dir: str
    resumed: bool = False


class IterationStarted(Event):
    type: Literal["iteration_started"] = "iteration_started"
    iteration: int
    dimension: str
    lanes: int


class StageChanged(Event):
    """A lane entered a stage; `combine` carries its WHAT and HOW, `done` the scores, `failed` the error."""

    type: Literal["stage"] = "stage"
    id: str
    parent: str | None = None
    iteration: int
    stage: str
    what: str | None = None
    how: str | None = None
    total: float | None = None
    alignment: float | None = None
    aesthetic: float | None = None
    error: str | None = None


class Ranked(Event):
    """After each ranking: the survivors and the best so far."""

    type: Literal["ranked"] = "ranked"
    iteration: int
    survivors: list[str]
    best: str
    best_total: float


class PairwiseVerdict(Comparison, Event):
    """One pair judged in both orders during a pairwise ranking."""

    type: Literal["pairwise"] = "pairwise"
    iteration: int


class WarningEvent(Event):
    """Something the user should know that does not stop the run."""

    type: Literal["warning"] = "warning"
    message: str


class Stopping(Event):
    """The run was asked to stop (Ctrl-C, a timeout): calls in flight are being cancelled."""

    type: Literal["stopping"] = "stopping"
    reason: str


class Result(Event):
    """The last line of `run --json`: where the run is and what it found."""

    type: Literal["result"] = "result"
    run_dir: str
    status: str | None = None
    reason: str | None = None
    exit_code: int = 0
    cost_usd: float = 0.0
    best: dict[str, Any] | None = None
    lineage: list[str] = Field(default_factory=list)


PROGRESS_TYPES: dict[str, type[Event]] = {
    cls.model_fields["type"].default: cls
    for cls in (RunOpened, IterationStarted, StageChanged, Ranked, PairwiseVerdict, WarningEvent, Stopping, Result)
}


def from_data(data: dict[str, Any]) -> Event:
    """Any event (logged or progress) from its JSON data; an unknown type is kept as an `OtherEvent`."""
    cls = LOGGED_TYPES.get(data.get("type", "")) or PROGRESS_TYPES.get(data.get("type", ""), OtherEvent)
    return cls.model_validate(data)
