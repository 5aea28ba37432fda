"""How the simulator's vision judge perceives a picture: the truth (`sim_measure`) seen with errors.

One perception feeds everything a judge says about a picture, its score and its notes alike:

* each element the idea asks for that the picture shows is overlooked at `sim.judge_miss_rate` (then
  the judge reports it missing and scores it so); each element that is absent, or there in its colour but
  not its form, is seen as there at `sim.judge_hallucination_rate`;
* each aesthetic aspect (contrast, colour, balance, clutter) that is weak goes unnamed at
  `sim.weak_miss_rate`, and each sound one is called weak at `sim.weak_false_rate`; a misjudged aspect is
  perceived on the other side of its limit, so the score moves with the note;
* a share `sim.judge_persistence` of these misperceptions belongs to the picture (drawn from the image's
  content, the same on every look) and the rest to the call (drawn from the step key).

The expected answer of a judge without the random part (`expected_*`) is recorded beside the truth, so a
benchmark can tell the judge's scale (its saturation, its average errors) from its random error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from beamsearch.providers.sim_measure import (
    ASPECT_LIMITS,
    ASPECT_WEIGHTS,
    CLUTTER_STEP,
    Measurement,
    aesthetic_of,
    alignment_of,
)
from beamsearch.providers.sim_world import stable_rng


@dataclass(frozen=True)
class Look:
    """Where a judge's chance comes from: the run's seed, the picture (its content digest) and the call
    (its step key, plus the image's place for a call that shows two)."""

    seed: int
    image: str
    call: str

    def chance(self, what: str, persistence: float) -> float:
        """A uniform draw for one element or aspect: the picture's own draw for a persistent share of
        elements, else the call's."""
        persistent = stable_rng(self.seed, "persist", self.image, what).random() < persistence
        source = ("image", self.image) if persistent else ("call", self.call)
        return stable_rng(self.seed, "perceive", *source, what).random()


@dataclass
class Seen:
    """What a judge perceived of one picture, and what a judge without random error would perceive."""

    alignment: float
    expected_alignment: float
    found: list[str]
    missing: list[str]
    aesthetic: float
    expected_aesthetic: float
    weak: list[str]


def perceive_alignment(truth: Measurement, look: Look, sim: Any) -> tuple[float, float, list[str], list[str]]:
    """Perceived alignment 0-100, its expectation, and the found and missing lists as the judge writes them."""
    credits, expected, found, missing = [], [], [], []
    for element in truth.elements:
        u = look.chance("element:" + element.label, sim.judge_persistence)
        if element.full:
            seen_there = u >= sim.judge_miss_rate
            expected.append(element.weight * (1 - sim.judge_miss_rate))
        else:
            hallucinated = u < sim.judge_hallucination_rate
            seen_there = hallucinated
            rate = sim.judge_hallucination_rate
            expected.append(rate * element.weight + (1 - rate) * element.credit)
        if seen_there:
            credits.append(element.weight)
            found.append(element.label)
        else:
            credits.append(0.0 if element.full else element.credit)
            missing.append(element.label if element.full else element.missing_text())
    return alignment_of(truth.elements, credits), alignment_of(truth.elements, expected), found, missing


def _flipped(value: float, limit: float) -> float:
    """An aspect perceived on the other side of its limit, as far from it as it truly is (at least 0.05)."""
    distance = max(0.05, abs(value - limit))
    return min(1.0, max(0.0, limit - distance if value >= limit else limit + distance))


def perceive_aesthetic(truth: Measurement, look: Look, sim: Any) -> tuple[float, float, list[str]]:
    """Perceived aesthetic 0-10, its expectation, and the weak aspects as the judge names them."""
    seen, mean = {}, {}
    for aspect, value in truth.details.items():
        if aspect not in ASPECT_WEIGHTS:
            continue
        weak = value < ASPECT_LIMITS[aspect]
        rate = sim.weak_miss_rate if weak else sim.weak_false_rate
        flipped = _flipped(value, ASPECT_LIMITS[aspect])
        seen[aspect] = flipped if look.chance("aspect:" + aspect, sim.judge_persistence) < rate else value
        mean[aspect] = rate * flipped + (1 - rate) * value
    cluttered = truth.clutter > 0
    rate = sim.weak_miss_rate if cluttered else sim.weak_false_rate
    flip = look.chance("aspect:clutter", sim.judge_persistence) < rate
    clutter_seen = (0.0 if cluttered else CLUTTER_STEP) if flip else truth.clutter
    clutter_mean = rate * (0.0 if cluttered else CLUTTER_STEP) + (1 - rate) * truth.clutter
    weak = [a for a in ASPECT_WEIGHTS if seen[a] < ASPECT_LIMITS[a]] + (["clutter"] if clutter_seen > 0 else [])
    return aesthetic_of(seen, clutter_seen), aesthetic_of(mean, clutter_mean), weak


def perceive(truth: Measurement, look: Look, sim: Any) -> Seen:
    alignment, expected_alignment, found, missing = perceive_alignment(truth, look, sim)
    aesthetic, expected_aesthetic, weak = perceive_aesthetic(truth, look, sim)
    return Seen(alignment, expected_alignment, found, missing, aesthetic, expected_aesthetic, weak)


def answers_yes(truly_yes: bool, look: Look, question: str, sim: Any) -> bool:
    """A checklist answer: the truth, misperceived like any element (or, with `sim.checklist_noise` set,
    wrong either way at that rate, drawn per call as the issue-7 judge did)."""
    if sim.checklist_noise is not None:
        return truly_yes != (stable_rng(look.seed, look.call, "checklist", question).random() < sim.checklist_noise)
    u = look.chance("question:" + question, sim.judge_persistence)
    return u >= sim.judge_miss_rate if truly_yes else u < sim.judge_hallucination_rate
