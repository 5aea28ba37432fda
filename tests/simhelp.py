"""Shared helpers for tests that run searches offline with the simulator."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

from beamsearch.config import Settings
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

RICH_IDEA = "a red lighthouse, a yellow sun, a white boat and a green tree by the sea at night"
# The seed's algorithm exactly: every child rendered even when it repeats a prompt, no judge asked twice.
SEED = {"variants": None, "rejudge": False}


def sim_settings(tmp_path: Path, **flags: Any) -> Settings:
    """Simulator settings with zero latency (unless overridden) and the run folder under tmp_path."""
    base = {"provider": "sim", "sim.latency.text.mean": 0, "sim.latency.image.mean": 0, "sim.latency.vision.mean": 0,
            "runs_dir": str(tmp_path / "runs"), "prompt": RICH_IDEA}
    base.update(flags)
    settings = resolve(None, base, environ={})
    unset = {name: None for name, value in flags.items() if value is None}  # resolve skips None (options not given)
    return Settings.model_validate({**settings.public_dict(), **unset}) if unset else settings


def finished_run(base: Path, **shape: Any) -> Path:
    """One finished simulator run in `base` (the idea "a white boat on a blue lake"), for tests that copy it
    and damage the copy."""
    from beamsearch.app import start_run

    result = asyncio.run(start_run(sim_settings(base, prompt="a white boat on a blue lake", **shape)))
    assert result.status == "done"
    return result.store.path


def copied_run(finished: Path, tmp_path: Path) -> Path:
    """A copy of a finished run folder in its own runs folder under `tmp_path`."""
    target = tmp_path / "runs" / finished.name
    shutil.copytree(finished, target)
    return target


def read_events(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (Path(run_dir) / "events.jsonl").read_text().splitlines() if line.strip()]


def step_tasks(events: list[dict[str, Any]]) -> Counter[str]:
    """Count finished steps by task name (the last part of the key, without a round suffix)."""
    return Counter(e["key"].split("/")[-1].split(".")[0] for e in events if e["type"] == "step")


class Timed:
    """Wraps the simulator and records when each call starts and ends; `delay(key)` adds extra latency,
    so tests can arrange slow lanes and slow critiques."""

    def __init__(self, simulator: Simulator, delay: Any = None) -> None:
        self.sim = simulator
        self.delay = delay or (lambda key: 0.0)
        self.log: list[tuple[float, str, str]] = []
        self.origin = time.monotonic()

    def _mark(self, what: str, key: str) -> None:
        self.log.append((time.monotonic() - self.origin, what, key))

    async def _wrapped(self, key: str, call: Any) -> Any:
        self._mark("start", key)
        extra = self.delay(key)
        if extra:
            await asyncio.sleep(extra)
        try:
            return await call
        finally:
            self._mark("end", key)

    async def complete(self, request: TextRequest) -> TextResult:
        return await self._wrapped(request.key, self.sim.complete(request))

    async def judge(self, request: VisionRequest) -> TextResult:
        return await self._wrapped(request.key, self.sim.judge(request))

    async def generate(self, request: ImageRequest) -> ImageResult:
        return await self._wrapped(request.key, self.sim.generate(request))

    def providers(self) -> Providers:
        return Providers(text=self, image=self, vision=self, labels={"text": "sim", "image": "sim", "vision": "sim"})

    def when(self, what: str, key: str) -> float:
        return next(t for t, w, k in self.log if w == what and k == key)
