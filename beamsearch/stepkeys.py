"""How steps are named and fingerprinted, so that resume can answer them from the log.

A key names the work (`i0/c03/expand_what`, `i1/p-i0c02/critique`, `i2/c07/image.r1`): the same search
always asks the same keys. A fingerprint names what a step was asked, so a recorded answer to other
inputs (an image redone after its file went missing, and everything that follows from it) is asked again.
"""

from __future__ import annotations

import hashlib
import json
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
