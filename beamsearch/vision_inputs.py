"""Each image's vision input: the picture as every judge of it sees it, made once, as soon as it lands.

A picture too big for the vision role (`vision.vision_max_side`) used to be decoded, shrunk and
re-encoded by every vision call that looked at it: both judges, each repeated judging, each pairwise
comparison, each checklist. Now the image step makes one input beside the picture
(`images/i1c04.png` -> `images/i1c04.vision.jpg`, see `shrink` for the format), in the picture pool,
in the same job that checks and writes the picture, and records it in the image step's result:

    "vision": {"path": "images/i1c04.vision.jpg", "sha256": "<16 hex digits>", "max_side": 768, ...}

Every judge of the picture sends that file, which the provider passes on without decoding it (it is
within `max_side`, in a format vision models take). On resume, a recorded input whose file is still the
one recorded (its name, its digest, its size limit) is used as it is; a missing or damaged one is made
again from the picture (no call is made: it is the picture's, not a model's). A picture that already fits
is its own input: no file is made.

The simulator is not given inputs: it measures the picture as painted (at 96 px, whatever it is sent),
so its truth does not shift with JPEG artefacts, and a shrink would be CPU spent for nothing.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from beamsearch import shrink
from beamsearch.errors import BeamsearchError, InvalidAnswer
from beamsearch.files import atomic_write, confined

SUFFIX = ".vision.jpg"


@dataclass(frozen=True)
class VisionPolicy:
    """What the vision role needs: pictures no larger than `max_side` (None: any size), and whether it
    is given prepared inputs at all (not the simulator)."""

    max_side: int | None
    enabled: bool = True

    def needed(self, fmt: str | None, size: tuple[int, int]) -> bool:
        return self.enabled and self.max_side is not None and not shrink.fits(fmt, size, self.max_side)


def vision_policy(settings: Any) -> VisionPolicy:
    """The policy of a run's settings: the vision role's size limit, unless the simulator judges."""
    return VisionPolicy(settings.vision.vision_max_side, enabled=settings.role_provider("vision") != "sim")


def input_name(image: str) -> str:
    """Where a picture's input goes: beside it, named for it (`images/i1c04.png` -> `images/i1c04.vision.jpg`)."""
    pure = PurePosixPath(image)
    return str(pure.with_name(pure.stem + SUFFIX))


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


class VisionInputs:
    """The inputs of one run folder's pictures: made, checked on resume, and looked up by the judges."""

    def __init__(self, folder: Path, policy: VisionPolicy) -> None:
        self.folder = folder
        self.policy = policy
        self.paths: dict[str, str] = {}  # a picture's path -> the path its judges send (itself when it fits)
        self._fresh: set[str] = set()  # inputs made by this process, which need no checking
        self._lock = threading.Lock()

    def make(self, image: str, data: bytes, fmt: str, size: tuple[int, int]) -> dict[str, Any] | None:
        """In a worker: the input of a picture that just arrived (`data`, stored at `image`), written
        atomically beside it; its record for the image step's result, or None when it fits as it is."""
        if not self.policy.needed(fmt, size):
            return None
        assert self.policy.max_side is not None
        try:
            jpeg, (width, height) = shrink.to_jpeg(data, self.policy.max_side)
        except Exception as exc:  # pixels that do not decode behind a well-formed header; Pillow raises many types
            raise InvalidAnswer(f"the image data cannot be decoded ({type(exc).__name__})") from None
        name = input_name(image)
        atomic_write(confined(self.folder, name), jpeg)
        with self._lock:
            self._fresh.add(name)
        return {"path": name, "sha256": _digest(jpeg), "max_side": self.policy.max_side, "format": "jpeg",
                "width": width, "height": height}

    def known(self, result: dict[str, Any]) -> str | None:
        """The path the judges of an image step's result send, when no file needs reading to tell (the
        picture fits as it is, or its input was made by this process); else None (see `settle`)."""
        image = str(result["path"])
        if not self.policy.needed(result.get("format"), (int(result.get("width") or 0), int(result.get("height") or 0))):
            return image
        record = result.get("vision")
        name = input_name(image)
        with self._lock:
            fresh = name in self._fresh
        return name if fresh and isinstance(record, dict) and record.get("path") == name else None

    def settle(self, result: dict[str, Any]) -> str:
        """In a worker, for an image step's result (fresh or replayed): the path its judges send, made
        again if the recorded input is missing or not the file recorded."""
        image = str(result["path"])
        size = (int(result.get("width") or 0), int(result.get("height") or 0))
        if not self.policy.needed(result.get("format"), size):
            return image
        record = result.get("vision")
        name = input_name(image)
        if isinstance(record, dict) and record.get("path") == name and self._still_there(name, record):
            return name
        try:
            data = confined(self.folder, image).read_bytes()  # checked whole when the step was replayed
            made = self.make(image, data, str(result.get("format")), size)
        except BeamsearchError:  # a full disk: the run stops
            raise
        except (OSError, InvalidAnswer):  # its judges try the picture itself, and say what is wrong with it
            return image
        return made["path"] if made is not None else image

    def _still_there(self, name: str, record: dict[str, Any]) -> bool:
        with self._lock:
            if name in self._fresh:
                return True
        if record.get("max_side") != self.policy.max_side:
            return False
        path = confined(self.folder, name)
        try:
            return path.is_file() and _digest(path.read_bytes()) == record.get("sha256")
        except OSError:
            return False

    def path_for(self, image: str) -> str:
        """What a judge of `image` sends: its input, or the picture itself."""
        return self.paths.get(image, image)
