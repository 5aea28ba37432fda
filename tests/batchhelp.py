"""Shared helpers for the batch tests: ideas files, offline settings and simulator wrappers."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from beamsearch.batch import BatchResult, run_batch
from beamsearch.batch_open import open_new_batch
from beamsearch.errors import ContentPolicyError
from beamsearch.precedence import resolve
from beamsearch.providers.base import ImageRequest, ImageResult, Providers
from beamsearch.providers.sim import Simulator

ZERO = {"BEAMSEARCH_SIM__LATENCY__TEXT__MEAN": "0", "BEAMSEARCH_SIM__LATENCY__IMAGE__MEAN": "0",
        "BEAMSEARCH_SIM__LATENCY__VISION__MEAN": "0"}
FIVE = ["a red lighthouse by the sea", "a white boat on a blue lake", "a yellow sun over a green field",
        "a black cat on a red road", "a blue bird in a yellow tree"]


def ideas_file(folder: Path, ideas: list[str], name: str = "ideas.txt") -> Path:
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# test ideas\n" + "\n".join(ideas) + "\n", encoding="utf-8")
    return path


def offline(tmp_path: Path, **flags: Any) -> Any:
    """Simulator settings for a batch: zero latency unless given, small searches, runs under tmp_path."""
    base = {"provider": "sim", "n": 3, "m": 2, "iterations": 2, "runs_dir": str(tmp_path / "runs"),
            "sim.latency.text.mean": 0, "sim.latency.image.mean": 0, "sim.latency.vision.mean": 0}
    base.update(flags)
    return resolve(None, base, environ={})


class Refusing:
    """An image model that refuses every prompt for content policy, as a provider's safety system may."""

    def __init__(self) -> None:
        self.refused = 0

    async def generate(self, request: ImageRequest) -> ImageResult:
        self.refused += 1
        raise ContentPolicyError("refused by the safety system (test)")


class Broken:
    """A vision model with a bug: not a provider error, a plain exception."""

    async def judge(self, request: Any) -> Any:
        raise ZeroDivisionError("a bug in a provider wrapper (test)")


def simulators(refuse: str | None = None, broken: str | None = None, made: list[Any] | None = None) -> Any:
    """`providers_for`: a simulator per idea; the idea whose prompt holds `refuse` gets every image refused,
    the one holding `broken` a judge that raises a bug."""

    def build(settings: Any) -> Providers:
        sim = Simulator(settings.seed, settings.sim)
        image: Any = Refusing() if refuse and refuse in settings.prompt else sim
        vision: Any = Broken() if broken and broken in settings.prompt else sim
        if made is not None:
            made.append((settings.prompt, sim, image))
        return Providers(text=sim, image=image, vision=vision, labels=dict.fromkeys(("text", "image", "vision"), sim.label))

    return build


async def batch_of(tmp_path: Path, ideas: list[str], concurrency: int | None = None, providers_for: Any = None,
                   **flags: Any) -> BatchResult:
    opened = open_new_batch(ideas_file(tmp_path, ideas), offline(tmp_path, **flags), concurrency)
    return await run_batch(opened, providers_for=providers_for)


def batch_events(batch_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (Path(batch_dir) / "batch.jsonl").read_text().splitlines() if line.strip()]


def steps_per_key(batch_dir: Path) -> Counter[tuple[str, str]]:
    """(idea's prompt, step key) -> how many answers were logged for it, over every run folder of the batch."""
    import yaml

    counts: Counter[tuple[str, str]] = Counter()
    for run in Path(batch_dir).iterdir():
        if not (run / "run.yaml").is_file():
            continue
        prompt = yaml.safe_load((run / "run.yaml").read_text())["settings"]["prompt"]
        for line in (run / "events.jsonl").read_text().splitlines():
            if line.strip():
                event = json.loads(line)
                if event.get("type") == "step":
                    counts[(prompt, event["key"])] += 1
    return counts
