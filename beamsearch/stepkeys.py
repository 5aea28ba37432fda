"""How steps are named and fingerprinted, so that resume can answer them from the log.

A key names the work (`i0/c03/expand_what`, `i1/p-i0c02/critique`, `i2/c07/image.r1`): the same search
always asks the same keys. A fingerprint names what a step was asked, so a recorded answer to other
inputs (an image redone after its file went missing, and everything that follows from it) is asked again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any


def key_of(iteration: int, lane: str, task: str) -> str:
    return f"i{iteration}/{lane}/{task}"


def sample_key(iteration: int, lane: str, task: str, sample: int) -> str:
    """The k-th independent answer of a judge: the first keeps the plain key, the others add `.s<k>`."""
    return key_of(iteration, lane, task if sample == 0 else f"{task}.s{sample}")


def inputs_of(task: str, *parts: Any) -> str:
    """A short fingerprint of what a step is asked: its task, its data (not the template's wording, so
    that editing a prompt file does not make a resume pay again) and the digests of its images."""
    text = json.dumps([task, *parts], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class KeyParts:
    """What a step key names, for readers that follow a run (the live view maps a retry to its lane)."""

    iteration: int | None  # None for run-wide steps (`run/checklist`)
    task: str  # without a round or sample suffix: `image.r1` -> `image`
    lane: str | None = None  # `c07`: one candidate of the iteration
    parent: str | None = None  # `p-i0c02`: the critique every child of that parent waits on
    pair: tuple[str, str] | None = None  # `pair-i1c00-i0c02`: a pairwise comparison at the ranking


def parts_of(key: str) -> KeyParts:
    """`i2/c07/image.r1` -> iteration 2, lane c07, task image; anything unexpected gives what it can."""
    head, _, rest = key.partition("/")
    subject, _, task = rest.rpartition("/")
    iteration = int(head[1:]) if head[:1] == "i" and head[1:].isdigit() else None
    task = task.split(".", 1)[0]
    if subject.startswith("p-"):
        return KeyParts(iteration, task, parent=subject[2:])
    if subject.startswith("pair-") and subject.count("-") == 2:
        first, second = subject[5:].split("-")
        return KeyParts(iteration, task, pair=(first, second))
    return KeyParts(iteration, task, lane=subject if subject[:1] == "c" and subject[1:].isdigit() else None)
