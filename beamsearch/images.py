"""The image steps: generate a picture (rephrasing a prompt refused for content policy), check it,
label it and write it to the run folder, make its one vision input (`vision_inputs`), and remember its
digest so that its judges' fingerprints name the very picture they judged.

A picture is checked before anything else touches it: its bytes must be what its format says (magic
bytes), whole (a PNG's chunks up to a final IEND, a JPEG's end marker, a WebP's RIFF size), and no larger
than `image.max_pixels`. A fresh answer that fails is an InvalidAnswer, retried and paid for; on resume a
recorded picture whose file fails the same check, or whose bytes no longer match the digest recorded when
it arrived, is redone. A bad picture fails its lane at worst, never the run."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from beamsearch import pngmeta, workers
from beamsearch.errors import BeamsearchError, CallError, ContentPolicyError, InvalidAnswer, StepFailed, paid
from beamsearch.files import atomic_write, confined
from beamsearch.gate import Gate, StepAnswer
from beamsearch.providers.base import ImageRequest, Providers
from beamsearch.stepkeys import inputs_of, key_of
from beamsearch.store import RunStore
from beamsearch.vision_inputs import VisionInputs, VisionPolicy

MAX_IMAGE_PIXELS = 16_777_216  # the default of image.max_pixels: 4096 x 4096
SUFFIXES = {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}
Rephrase = Callable[[int, str, int, str, str], Awaitable[str]]


@dataclass
class Rendered:
    path: str
    prompt: str
    revised_prompt: str | None
    rephrases: list[str]


def sniff(data: bytes) -> str | None:
    """'png', 'jpeg' or 'webp' from the magic bytes: what the data is, whatever anyone calls it."""
    if pngmeta.is_png(data):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def _whole(data: bytes, fmt: str) -> None:
    """Raise InvalidAnswer unless the data runs to its format's proper end (a cut-short file, or bytes
    after the end, would pass Pillow's header check and break later)."""
    try:
        if fmt == "png":
            pngmeta.check(data)
        elif fmt == "jpeg" and not data.endswith(b"\xff\xd9"):
            raise InvalidAnswer("the JPEG data is cut short (it has no end marker)")
        elif fmt == "webp" and int.from_bytes(data[4:8], "little") + 8 not in (len(data), len(data) - 1):
            raise InvalidAnswer("the WebP data does not have the size its header gives")
    except pngmeta.PngError as exc:
        raise InvalidAnswer(str(exc)) from None


def check_image(data: bytes, fmt: str | None = None, max_pixels: int = MAX_IMAGE_PIXELS) -> tuple[int, int]:
    """Check what the data is, that it is whole, and its size from the header alone (never decoding a
    bomb): (width, height), or InvalidAnswer (a malformed answer, retried)."""
    found = sniff(data)
    if found is None:
        raise InvalidAnswer("the image data is not a PNG, JPEG or WebP image")
    if fmt is not None and found != fmt:
        raise InvalidAnswer(f"the image data is {found.upper()}, not the {fmt.upper()} it was said to be")
    _whole(data, found)
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise InvalidAnswer(f"the image is too large ({width}x{height} is more than image.max_pixels, {max_pixels})")
            image.verify()
    except InvalidAnswer:
        raise
    except Exception as exc:  # Pillow raises many types for broken data
        raise InvalidAnswer(f"the image data cannot be decoded ({type(exc).__name__})") from None
    return width, height


def digest_of(data: bytes, fmt: str) -> str:
    """The digest of a picture as the service sent it (a PNG without the text chunks we add)."""
    return hashlib.sha256(pngmeta.without_ours(data) if fmt == "png" else data).hexdigest()[:16]


def still_there(folder: Path, result: dict[str, Any], max_pixels: int = MAX_IMAGE_PIXELS) -> bool:
    """Whether the file a recorded image step names is still the picture it recorded: inside the run
    folder (else a RunFolderError: nothing is read), named for its format, whole, and, when the step
    recorded a digest, the very bytes that arrived. Anything else is redone."""
    path = confined(folder, result.get("path"))
    fmt = result.get("format")
    if path.suffix != SUFFIXES.get(str(fmt)) or not path.is_file():
        return False
    try:
        data = path.read_bytes()
        check_image(data, str(fmt), max_pixels)
        return not result.get("sha256") or digest_of(data, str(fmt)) == result["sha256"]
    except (OSError, InvalidAnswer):
        return False


class RenderSteps:
    """Image generation through the gate, and the files it leaves in the run folder."""

    def __init__(self, gate: Gate, providers: Providers, store: RunStore, max_rephrases: int,
                 max_pixels: int = MAX_IMAGE_PIXELS, judges: int = 2, vision: VisionPolicy | None = None) -> None:
        self.gate = gate
        self.providers = providers
        self.store = store
        self.max_rephrases = max_rephrases
        self.max_pixels = max_pixels
        self.judges = judges  # vision calls that judge each picture: reserved with it (see costs)
        self.digests: dict[str, str] = {}  # image path -> digest of the bytes the provider returned
        self.vision = VisionInputs(store.path, vision or VisionPolicy(None, enabled=False))

    async def render_with(self, iteration: int, lane: str, candidate_id: str, prompt: str, labels: dict[str, str],
                          rephrase: Rephrase) -> Rendered:
        """Generate the image; on a content-policy refusal, have the LLM rephrase and try again (bounded).
        Refusals and rephrases are recorded steps too, so a resumed run does not repeat them."""
        rephrases: list[str] = []
        current = prompt
        for round_number in range(self.max_rephrases + 1):
            suffix = "" if round_number == 0 else f".r{round_number}"
            result = await self._image(key_of(iteration, lane, f"image{suffix}"), candidate_id, current, labels)
            if "rejected" not in result:
                return Rendered(result["path"], current, result.get("revised_prompt"), rephrases)
            if round_number == self.max_rephrases:
                raise StepFailed(f"the image prompt was refused {round_number + 1} times for content policy: "
                                 f"{result['rejected']}")
            current = await rephrase(iteration, lane, round_number + 1, current, result["rejected"])
            rephrases.append(current)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _image(self, key: str, candidate_id: str, prompt: str, labels: dict[str, str]) -> dict[str, Any]:
        request = ImageRequest(key=key, prompt=prompt)

        async def attempt() -> StepAnswer:
            try:
                answer = await self.providers.image.generate(request)
            except ContentPolicyError as exc:
                return StepAnswer({"rejected": exc.message})
            chunks = {"beamsearch:id": candidate_id, "beamsearch:prompt": prompt, "beamsearch:step": key, **labels}
            if answer.revised_prompt:
                chunks["beamsearch:revised_prompt"] = answer.revised_prompt
            # checking, writing and shrinking the picture: in the picture pool, so other lanes go on
            try:
                result = await workers.run(self._save_image, candidate_id, answer.data, answer.format, chunks)
            except (CallError, BeamsearchError) as exc:  # a bad picture, a full disk: it was paid for all the same
                raise paid(exc, answer.usage) from None
            if answer.revised_prompt:
                result["revised_prompt"] = answer.revised_prompt
            return StepAnswer(result, answer.usage, answer.meta)

        def still_valid(result: dict[str, Any]) -> bool:
            return "rejected" in result or still_there(self.store.path, result, self.max_pixels)

        result = await self.gate.call(key, "image", attempt, still_valid=still_valid, inputs=inputs_of("image", prompt),
                                      judges=self.judges)
        if "rejected" in result:
            self.gate.forfeit(key)  # no picture to judge: its judges' reserve is free again
        if "path" in result:  # the judges' inputs name the picture by its digest, so a new picture is judged anew
            self.digests[result["path"]] = result.get("sha256", "")
            known = self.vision.known(result)
            self.vision.paths[result["path"]] = known or await workers.run(self.vision.settle, result)
        return result

    def _save_image(self, candidate_id: str, data: bytes, fmt: str, chunks: dict[str, str]) -> dict[str, Any]:
        """Check the image, label a PNG with its text chunks, write it atomically, make its vision input:
        the image step's result (the digest is of the bytes as the provider sent them)."""
        width, height = check_image(data, fmt, self.max_pixels)
        digest = digest_of(data, fmt)
        labelled = pngmeta.with_text(data, chunks) if fmt == "png" else data  # checked whole above: cannot fail
        path = self.store.write_image(candidate_id, labelled, fmt)
        result: dict[str, Any] = {"path": path, "format": fmt, "width": width, "height": height, "sha256": digest}
        made = self.vision.make(path, data, fmt, (width, height))
        if made is not None:
            result["vision"] = made
        return result

    async def annotate(self, image: str, entries: dict[str, str]) -> None:
        """Store scores in the PNG's text chunks (no pixel re-encode); other formats are left as they are.
        The rewrite runs in the picture pool: file I/O on the event loop would delay every other lane."""
        await workers.run(self._annotate, confined(self.store.path, image), entries)

    @staticmethod
    def _annotate(path: Path, entries: dict[str, str]) -> None:
        """Labels are a courtesy: a file that is no longer a whole PNG is left as it is."""
        if path.suffix == ".png" and path.is_file():
            try:
                atomic_write(path, pngmeta.with_text(path.read_bytes(), entries))
            except pngmeta.PngError:
                return
