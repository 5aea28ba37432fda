"""Running one search for the benchmark: a recording simulator, a stage-by-stage comparison schedule,
and the numbers taken from the run.

The recording simulator is the real simulator with a stopwatch around each call: it notes when each
call started (to check the rate limit from recorded start times) and how long the call took beyond its
drawn latency (the simulator's own painting and measuring, which a real provider would not cost us).
"""

from __future__ import annotations

import asyncio
import io
import json
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from beamsearch import app
from beamsearch.compose import Pieces
from beamsearch.config import Settings
from beamsearch.events import Event
from beamsearch.precedence import resolve
from beamsearch.providers.base import (
    ImageRequest,
    ImageResult,
    Providers,
    TextRequest,
    TextResult,
    VisionRequest,
)
from beamsearch.providers.sim import Simulator

IDEA = "a red lighthouse, a yellow sun, a white boat and a green tree by the sea at night"


def grained(png: bytes) -> bytes:
    """The painting with film grain, so that it compresses like a photograph: a 1024 px PNG then weighs
    about 1.5 MB, as image models' PNGs do, where the flat painting weighs 20 KB."""
    with Image.open(io.BytesIO(png)) as image:
        base = image.convert("RGB")
    noisy = Image.blend(base, Image.effect_noise(base.size, 32).convert("RGB"), 0.2)
    buffer = io.BytesIO()
    noisy.save(buffer, "PNG")
    return buffer.getvalue()


class RecordingSimulator(Simulator):
    """The simulator, plus each call's start time and its time spent beyond the drawn latency."""

    def __init__(self, seed: int, sim: Any, cached_work: bool = False, photo_like: bool = False) -> None:
        super().__init__(seed, sim)
        self.photo_like = photo_like  # with cached_work: grain the cached image so it weighs what a photo does
        self.starts: dict[str, list[float]] = defaultdict(list)
        self.extra: dict[str, float] = {}  # step key -> seconds of the call not spent in the drawn latency
        self.work_cpu = 0.0  # CPU seconds of painting and measuring, in worker threads
        self.text_cpu = 0.0  # CPU seconds of text answers (only measured when text latency is zero)
        self.cached_work = cached_work  # paint once and measure once, then hand out copies: no pixel work
        self._cached_png: bytes | None = None
        self._cached_measurement: Any = None

    async def _timed(self, service: str, key: str, call: Any) -> Any:
        begin = time.monotonic()
        self.starts[service].append(begin)
        result = await call
        self.extra[key] = max(0.0, time.monotonic() - begin - float(result.meta.get("latency", 0.0)))
        return result

    async def complete(self, request: TextRequest) -> TextResult:
        if self.settings.latency.text.mean == 0:  # nothing inside suspends, so this thread's CPU is the sim's
            cpu = time.thread_time()
            try:
                return await self._timed("text", request.key, super().complete(request))
            finally:
                self.text_cpu += time.thread_time() - cpu
        return await self._timed("text", request.key, super().complete(request))

    async def generate(self, request: ImageRequest) -> ImageResult:
        return await self._timed("image", request.key, super().generate(request))

    async def judge(self, request: VisionRequest) -> TextResult:
        return await self._timed("vision", request.key, super().judge(request))

    def _paint(self, prompt: str) -> bytes:
        cpu = time.thread_time()
        try:
            if self.cached_work:
                if self._cached_png is None:
                    self._cached_png = super()._paint(IDEA)
                    if self.photo_like:
                        self._cached_png = grained(self._cached_png)
                return self._cached_png
            return super()._paint(prompt)
        finally:
            self.work_cpu += time.thread_time() - cpu

    def _measure(self, request: VisionRequest) -> Any:
        cpu = time.thread_time()
        try:
            if self.cached_work:
                if self._cached_measurement is None:
                    self._cached_measurement = super()._measure(request)
                return self._cached_measurement
            return super()._measure(request)
        finally:
            self.work_cpu += time.thread_time() - cpu

    def providers(self) -> Providers:
        return Providers(text=self, image=self, vision=self, labels=dict.fromkeys(("text", "image", "vision"), self.label))


class StageBarriers:
    """Wraps the real `Steps` so that no lane starts a stage before every lane of its iteration has
    finished the stage before: the stage-by-stage schedule, with the same engine and the same calls.

    A lane reaches stage X's barrier when it asks for X, which it does right after finishing the stage
    before; the barrier opens when all `n` lanes (2n calls for the paired expands) have arrived.
    """

    GATED = frozenset({"combine", "render", "refine", "judge_alignment", "judge_aesthetic"})

    def __init__(self, steps: Any, n: int) -> None:
        self._steps = steps
        self._n = n
        self._arrived: dict[tuple[int, str], int] = defaultdict(int)
        self._open: dict[tuple[int, str], asyncio.Event] = {}

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._steps, name)
        if name not in self.GATED:
            return attribute

        async def gated(iteration: int, *args: Any, **kwargs: Any) -> Any:
            await self._wait(iteration, name)
            return await attribute(iteration, *args, **kwargs)

        return gated

    async def _wait(self, iteration: int, stage: str) -> None:
        key = (iteration, stage)
        event = self._open.setdefault(key, asyncio.Event())
        self._arrived[key] += 1
        if self._arrived[key] >= self._n:
            event.set()
        await event.wait()


@dataclass
class Measured:
    """What one benchmark run produced."""

    wall: float  # run_started -> run_finished, as published
    total_wall: float  # the whole start_run call, including the run folder and derived files
    cpu: float  # process CPU seconds (all threads) during start_run
    search_cpu: float  # process CPU seconds between run_started and run_finished
    events: list[dict[str, Any]]
    simulator: RecordingSimulator
    settings: Settings
    status: str
    candidates: int = 0
    extras: dict[str, Any] = field(default_factory=dict)


def settings_for(runs_dir: Path, *, n: int, m: int, iterations: int, text: float = 0.2, image: float = 1.0,
                 vision: float = 0.3, jitter: float = 0.5, image_size: int = 256, seed: int = 0,
                 extra: dict[str, Any] | None = None) -> Settings:
    flags: dict[str, Any] = {
        "provider": "sim", "prompt": IDEA, "n": n, "m": m, "iterations": iterations, "seed": seed,
        "runs_dir": str(runs_dir), "sim.image_size": image_size,
        "sim.latency.text.mean": text, "sim.latency.text.jitter": jitter,
        "sim.latency.image.mean": image, "sim.latency.image.jitter": jitter,
        "sim.latency.vision.mean": vision, "sim.latency.vision.jitter": jitter,
    }
    flags.update(extra or {})
    settings = resolve(None, flags, environ={})
    unset = {name: None for name, value in (extra or {}).items() if value is None}  # resolve skips None flags
    return Settings.model_validate({**settings.public_dict(), **unset}) if unset else settings


def run_search(settings: Settings, *, staged: bool = False, simulator: RecordingSimulator | None = None) -> Measured:
    """Run one search in a fresh event loop and collect its timings and events."""
    sim = simulator or RecordingSimulator(settings.seed, settings.sim)
    marks: dict[str, float] = {}

    def listen(event: Event) -> None:
        if event.type in ("run_started", "run_finished"):
            marks[event.type] = time.perf_counter()
            marks[event.type + "_cpu"] = time.process_time()

    # stage-by-stage: the real steps behind stage barriers (the engine is unchanged)
    pieces = Pieces(providers=sim.providers(), wrap_steps=(lambda steps: StageBarriers(steps, settings.n)) if staged else None)
    begin, cpu = time.perf_counter(), time.process_time()
    result = asyncio.run(app.start_run(settings, [listen], pieces=pieces))
    total, cpu = time.perf_counter() - begin, time.process_time() - cpu
    events = [json.loads(line) for line in (result.store.path / "events.jsonl").read_text().splitlines() if line]
    candidates = len({e["id"] for e in events if e.get("type") == "candidate"})  # judged again: logged again
    lanes = len({e["id"] for e in events if e.get("type") in ("candidate", "lane_skipped", "lane_failed")})
    return Measured(marks["run_finished"] - marks["run_started"], total, cpu,
                    marks["run_finished_cpu"] - marks["run_started_cpu"], events, sim, settings, result.status,
                    candidates, {"run_dir": result.store.path, "lanes": lanes})


class FolderProbe:
    """A run listener that notes the run folder of each session the moment it is opened."""

    def __init__(self, on_made: Any = None) -> None:
        self.made: list[Path] = []
        self.on_made = on_made

    def __call__(self, event: Event) -> None:
        if event.type == "run_opened":
            self.made.append(Path(event.run_dir))  # type: ignore[attr-defined]
            if self.on_made is not None:
                self.on_made(self.made[-1])


@contextmanager
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="beamsearch-bench-") as folder:
        yield Path(folder)
