"""Lower bounds on a run's wall time, computed from the latencies the simulator actually drew.

Nothing here measures time: these are pure functions of the recorded events, so they can be checked on
hand-made examples. The benchmark compares the measured wall time with them.

Two bounds (DESIGN.md section 8):

* the critical path: within an iteration every lane can run at once, so the iteration takes at least as
  long as its slowest lane's own chain (including the critique of its parent); the ranking barrier makes
  iterations add up;
* the rate limit: `limits.ServiceLimiter` lets at most `allowed = max(1, int(rpm * window_s / 60))` calls
  start within any `period = allowed * 60 / rpm` seconds (a sliding window, enforced by asyncio-throttle).
  No schedule can start its j-th image before the greedy one does, and each iteration still has to wait
  for its slowest image and judges before the next can begin.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from beamsearch.limits import rate_window

PARALLEL_GROUPS = ("expand", "judge")  # tasks a lane runs side by side: the slowest one counts


@dataclass(frozen=True)
class LaneChain:
    """One candidate's own chain of drawn latencies, split at its image request."""

    iteration: int
    lane: str
    before_image: float  # (parent's critique +) expand or refine + combine
    image_and_after: float  # image (and any rephrase rounds) + the slowest judge
    images: int = 1  # image requests it made (none: a skipped repeat, or a parent judged again)

    @property
    def total(self) -> float:
        return self.before_image + self.image_and_after


def read_events(run_dir: Path) -> list[dict[str, Any]]:
    """A run's events.jsonl as plain JSON objects (what the figures here are read from)."""
    return [json.loads(line) for line in (Path(run_dir) / "events.jsonl").read_text().splitlines() if line.strip()]


def step_latencies(events: Iterable[dict[str, Any]]) -> dict[str, float]:
    """Step key -> the latency the simulator drew for its (last) attempt."""
    return {e["key"]: float(e["meta"]["latency"]) for e in events
            if e.get("type") == "step" and isinstance(e.get("meta"), dict) and "latency" in e["meta"]}


def _group(task: str) -> str:
    if ".v" in task:  # a variant asked again after the first answer repeated a prompt: one after the other
        return task
    for name in PARALLEL_GROUPS:
        if task.startswith(name):
            return name
    if task.startswith(("image", "rephrase")):
        return "image"
    return task


def lane_chains(events: list[dict[str, Any]], extra: dict[str, float] | None = None) -> list[LaneChain]:
    """Every lane's chain, from `i{k}/{lane}/{task}` step keys and the candidates' parents.

    A candidate's id is `i{k}` + its lane name, and its parent's critique is `i{k}/p-{parent}/critique`.
    `extra` adds seconds per step key to its latency (e.g. the simulator's own painting time).
    """
    latency = step_latencies(events)
    for key, seconds in (extra or {}).items():
        if key in latency:
            latency[key] += seconds
    parents = {e["id"]: e.get("parent") for e in events if e.get("type") in ("candidate", "lane_failed")}
    tasks: dict[tuple[int, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for key, seconds in latency.items():
        parts = key.split("/", 2)
        if len(parts) != 3 or not parts[0][1:].isdigit() or not parts[1][1:].isdigit():
            continue  # a parent's critique (p-...), a pairwise comparison, the run's checklist, a judging again
        head, lane, task = parts
        tasks[(int(head[1:]), lane)][_group(task)].append(seconds)
    for key, seconds in latency.items():  # kept parents judged again, and the final check: judges only
        parts = key.split("/", 2)
        if len(parts) == 3 and parts[0][1:].isdigit() and parts[1].startswith("keep-"):
            tasks[(int(parts[0][1:]), parts[1])][_group(parts[2])].append(seconds)
    chains = []
    for (k, lane), groups in sorted(tasks.items()):
        parent = parents.get(f"i{k}{lane}")
        critique = latency.get(f"i{k}/p-{parent}/critique", 0.0) if parent else 0.0
        before = critique + max(groups.get("expand", [0.0])) + sum(
            sum(v) for g, v in groups.items() if g not in ("expand", "judge", "image"))
        after = sum(groups.get("image", [])) + max(groups.get("judge", [0.0]))
        chains.append(LaneChain(k, lane, before, after, len(groups.get("image", []))))
    return chains


def by_iteration(chains: list[LaneChain]) -> list[list[LaneChain]]:
    grouped: dict[int, list[LaneChain]] = defaultdict(list)
    for chain in chains:
        grouped[chain.iteration].append(chain)
    return [grouped[k] for k in sorted(grouped)]


def critical_path_bound(chains: list[LaneChain]) -> float:
    """Sum over iterations of the slowest lane's own chain."""
    return sum(max(c.total for c in lanes) for lanes in by_iteration(chains))


window_scheme = rate_window  # (calls allowed, per how many seconds), exactly as the limiter enforces an rpm


def requests_over_rate(requests: int, rpm: float) -> float:
    """The naive bound: requests divided by the rate."""
    return requests * 60.0 / rpm


def rate_limited_bound(chains: list[LaneChain], rpm: float, window_s: float) -> float:
    """A lower bound under the image limiter's sliding window that also respects the ranking barrier.

    Per iteration, from its earliest possible start `t`: image j (in order of readiness) can start no
    earlier than the j-th lane is ready, and no earlier than `period` after the start `allowed` images
    before it (over the whole run). Those greedy start times are element-wise the earliest any schedule
    can achieve. The t images started last include one whose image-and-judging takes at least the t-th
    shortest such time, so the iteration ends no earlier than max_t(start[N-t] + tail_sorted[t-1]), nor
    earlier than `t` + its slowest lane's chain.
    """
    allowed, period = window_scheme(rpm, window_s)
    starts: list[float] = []
    t = 0.0
    for everyone in by_iteration(chains):
        lanes = [c for c in everyone if c.images]  # only lanes that asked for an image take a slot
        if not lanes:  # the final check: judges only
            t += max(c.total for c in everyone)
            continue
        slots = []
        for ready in sorted(t + c.before_image for c in lanes):
            start = ready
            if len(starts) >= allowed:
                start = max(start, starts[-allowed] + period)
            if starts:
                start = max(start, starts[-1])
            starts.append(start)
            slots.append(start)
        tails = sorted(c.image_and_after for c in lanes)
        n = len(lanes)
        end = max(slots[n - j] + tails[j - 1] for j in range(1, n + 1))
        t = max(end, t + max(c.total for c in everyone))
    return t


def first_come_schedule(chains: list[LaneChain], rpm: float, window_s: float) -> float:
    """The wall time of a perfect, zero-overhead engine with beamsearch's policy: images start in the
    order their lanes become ready (the limiter queues in arrival order), each as early as the window
    allows. Unlike `rate_limited_bound` it cannot know which image will be slow, so it may give the last
    slot to a slow one: the gap between the two is the price of not knowing latencies in advance, and
    the gap between this and the measured wall time is the orchestration's own cost."""
    allowed, period = window_scheme(rpm, window_s)
    starts: list[float] = []
    t = 0.0
    for lanes in by_iteration(chains):
        end = t + max(c.total for c in lanes)
        for chain in sorted((c for c in lanes if c.images), key=lambda c: c.before_image):
            start = t + chain.before_image
            if len(starts) >= allowed:
                start = max(start, starts[-allowed] + period)
            if starts:
                start = max(start, starts[-1])
            starts.append(start)
            end = max(end, start + chain.image_and_after)
        t = end
    return t


@dataclass(frozen=True)
class WindowCheck:
    allowed: int
    period: float
    max_in_period: int  # most starts seen within any `period`-long window
    max_in_minute: int  # most starts seen within any 60 s window
    min_gap_allowed_apart: float | None  # smallest time between start j and start j + allowed

    def within(self, rpm: float, tolerance: float = 1e-3) -> bool:
        gap_ok = self.min_gap_allowed_apart is None or self.min_gap_allowed_apart >= self.period - tolerance
        return gap_ok and self.max_in_minute <= rpm


def check_window(starts: Iterable[float], rpm: float, window_s: float) -> WindowCheck:
    """Did the recorded start times ever exceed the limit? Counts starts in every window that begins at a
    start (the busiest windows always do) and measures how close starts `allowed` apart came."""
    allowed, period = window_scheme(rpm, window_s)
    times = sorted(starts)

    def busiest(width: float) -> int:
        most, j = 0, 0
        for i, begin in enumerate(times):
            j = max(j, i)
            while j < len(times) and times[j] < begin + width:
                j += 1
            most = max(most, j - i)
        return most

    gaps = [times[i + allowed] - times[i] for i in range(len(times) - allowed)]
    return WindowCheck(allowed, period, busiest(period - 1e-3), busiest(60.0), min(gaps) if gaps else None)
