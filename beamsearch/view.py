"""The one fold of a run's log: events in, a typed view of the run out.

Replay (what is recorded, what failed for good, what was spent), `summary.json`, `show`, `list`, the
report and the live display all read a run through `RunView`, so they agree on what a log means: the
latest word on a candidate wins (a resume may finish a lane that failed, or judge a redone image anew),
a redone step's later answer wins, and every answer paid for counts toward the spend (a usable one in
its `step`, an unusable one in its logged `attempt_failed`).

The fold is incremental (`apply` one event at a time), so a live reader (the display, the web view)
keeps the same view up to date as events arrive.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from beamsearch.events import (
    CHECKLIST_KEY,
    AlignmentFallback,
    AttemptFailed,
    Candidate,
    Event,
    FinalCheck,
    LaneFailed,
    LaneSkipped,
    Ranking,
    RunFinished,
    RunStarted,
    Step,
    StepFailure,
    UsageRecord,
)


@dataclass
class ServiceUsage:
    """What one service's calls consumed over the whole log."""

    calls: int = 0
    attempts: int = 0
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    images: int = 0

    highest: float = 0.0  # the most one answer has cost: where a resumed budget's reserve starts

    def add(self, step: Step) -> None:
        self.calls += 1
        self.attempts += step.attempts
        self._paid(step.cost, step.usage)

    def add_failed(self, attempt: AttemptFailed) -> None:
        """An answer paid for and thrown away (its attempt is counted by the step that follows, if any)."""
        self._paid(attempt.cost, attempt.usage)

    def _paid(self, cost: float, usage: UsageRecord | None) -> None:
        self.cost_usd += cost
        self.highest = max(self.highest, cost)
        if usage is not None:
            self.input_tokens += usage.input_tokens
            self.output_tokens += usage.output_tokens
            self.images += usage.images


def iteration_of_key(key: str) -> int | None:
    """`i2/c07/image` -> 2; None for run-wide steps (`run/checklist`)."""
    head = key.split("/", 1)[0]
    return int(head[1:]) if head[:1] == "i" and head[1:].isdigit() else None


def journal_ident(event: Event) -> str | None:
    """Events the engine logs once per identity (a replay that reaches the same one logs nothing)."""
    if isinstance(event, Candidate) and len(event.judgements) > 1:  # judged again: each state its own identity
        return f"candidate:{event.id}:j{len(event.judgements)}"
    if isinstance(event, Candidate | LaneFailed | LaneSkipped):
        return f"{event.type}:{event.id}"
    if isinstance(event, Ranking):
        return f"ranking:{event.iteration}"
    if isinstance(event, FinalCheck):
        return "final_check"
    if isinstance(event, AlignmentFallback):
        return "alignment_fallback"
    return None


@dataclass
class RunView:
    """Everything a log says about a run, kept current by `apply`."""

    steps: dict[str, Step] = field(default_factory=dict)  # key -> latest answer
    failures: dict[str, StepFailure] = field(default_factory=dict)  # key -> failure not answered since
    candidates: dict[str, Candidate] = field(default_factory=dict)  # id -> latest, unless its lane failed since
    failed_lanes: dict[str, LaneFailed] = field(default_factory=dict)
    skipped_lanes: dict[str, LaneSkipped] = field(default_factory=dict)  # repeats, never rendered
    rankings: dict[int, Ranking] = field(default_factory=dict)
    final: FinalCheck | None = None
    journal: dict[str, Event] = field(default_factory=dict)  # journal_ident -> latest logged
    usage: dict[str, ServiceUsage] = field(default_factory=dict)
    checklist: list[dict] | None = None
    fallback: AlignmentFallback | None = None  # the checklist could not be made: alignment was rated
    status: str = "running"
    reason: str = ""
    sessions: int = 0
    last_finish: RunFinished | None = None  # the run_finished of the last session, if it ended with one
    shaping: dict | None = None  # the past-shaping settings the last session that recorded them followed
    unpriced: set[str] | None = None  # models of the run no price table knew (None: not recorded)
    events: int = 0

    def apply(self, event: Event) -> None:
        self.events += 1
        if (ident := journal_ident(event)) is not None:
            self.journal[ident] = event
        if isinstance(event, Step):
            self._step(event)
        elif isinstance(event, StepFailure):
            self.failures[event.key] = event
        elif isinstance(event, AttemptFailed) and (event.cost or event.usage is not None):
            self.usage.setdefault(event.service, ServiceUsage()).add_failed(event)
        elif isinstance(event, Candidate):
            self.candidates[event.id] = event
            self.failed_lanes.pop(event.id, None)
        elif isinstance(event, LaneFailed):
            self.failed_lanes[event.id] = event
            self.candidates.pop(event.id, None)
        elif isinstance(event, LaneSkipped):
            self.skipped_lanes[event.id] = event
        elif isinstance(event, Ranking):
            self.rankings[event.iteration] = event
            self.final = None  # a later ranking (a resumed run extended) supersedes an earlier final check
        elif isinstance(event, FinalCheck):
            self.final = event
        elif isinstance(event, AlignmentFallback):
            self.fallback = event
        elif isinstance(event, RunStarted):
            self.sessions += 1
            if event.shaping is not None:
                self.shaping = event.shaping
            if event.unpriced is not None:
                self.unpriced = (self.unpriced or set()) | set(event.unpriced)
            self.status, self.reason, self.last_finish = "running", "", None
        elif isinstance(event, RunFinished):
            self.status, self.reason, self.last_finish = event.status, event.reason, event

    def _step(self, step: Step) -> None:
        self.steps[step.key] = step
        self.failures.pop(step.key, None)  # answered after all (a later resume): the answer wins
        self.usage.setdefault(step.service, ServiceUsage()).add(step)
        if step.key == CHECKLIST_KEY and self.checklist is None:
            self.checklist = list(step.result["questions"])

    # --- what replay needs --------------------------------------------------------------------------

    def settled_failures(self) -> dict[str, StepFailure]:
        """Step failures that a ranking has already taken into account: replay repeats them, so the
        replayed past is the recorded one. A failure in an iteration that was never ranked (the run
        stopped in it, perhaps because of that failure) is the future: resume asks again. The run's
        checklist is the exception: once it failed, the run rated alignment from then on (every lane
        judged after it did), so its failure is always repeated and a resume judges as the run did."""
        return {key: failure for key, failure in self.failures.items()
                if key == CHECKLIST_KEY or ((k := iteration_of_key(key)) is not None and k in self.rankings)}

    @property
    def spent(self) -> float:
        """Every answer paid for, a redone one twice."""
        return sum(u.cost_usd for u in self.usage.values())

    def spent_by_service(self) -> dict[str, float]:
        return {service: u.cost_usd for service, u in self.usage.items()}

    @property
    def iterations_done(self) -> int:
        return len(self.rankings)

    # --- what readers need --------------------------------------------------------------------------

    def scored(self) -> list[Candidate]:
        """Candidates that were scored, in id order (iteration, then index)."""
        return sorted((c for c in self.candidates.values() if c.status == "done"), key=lambda c: c.order)

    def best(self) -> Candidate | None:
        """The answer of the search: the final check's choice, else the last ranking's decision (the engine
        records it), else (logs from before either was recorded) the highest total ever scored."""
        if self.final is not None and self.final.best in self.candidates:
            return self.candidates[self.final.best]
        decided = [r.best for _, r in sorted(self.rankings.items()) if r.best in self.candidates]
        if decided:
            return self.candidates[decided[-1]]  # type: ignore[index]
        done = self.scored()
        return min(done, key=lambda c: (-c.total, c.order)) if done else None

    def lineage(self, candidate_id: str | None) -> list[str]:
        """The family line of a candidate back to iteration 0, oldest first."""
        chain: list[str] = []
        while candidate_id is not None and candidate_id in self.candidates and candidate_id not in chain:
            chain.append(candidate_id)
            candidate_id = self.candidates[candidate_id].parent
        return list(reversed(chain))


def fold(events: Iterable[Event]) -> RunView:
    """The view of a whole log."""
    view = RunView()
    for event in events:
        view.apply(event)
    return view
