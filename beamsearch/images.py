"""The image steps: generate a picture (rephrasing a prompt refused for content policy), check it,
label it and write it to the run folder, and remember its digest so that its judges' fingerprints name
the very picture they judged."""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from beamsearch import pngmeta
from beamsearch.errors import ContentPolicyError, InvalidAnswer, StepFailed
from beamsearch.files import atomic_write
from beamsearch.gate import Gate, StepAnswer
from beamsearch.providers.base import ImageRequest, Providers
from beamsearch.stepkeys import inputs_of, key_of
from beamsearch.store import RunStore

MAX_IMAGE_PIXELS = 40_000_000
Rephrase = Callable[[int, str, int, str, str], Awaitable[str]]


@dataclass
class Rendered:
    path: str
    prompt: str
    revised_prompt: str | None
    rephrases: list[str]


def check_image(data: bytes) -> tuple[int, int]:
    """Decode the header and refuse decompression bombs and non-images (a malformed answer, retried)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise InvalidAnswer(f"the image is too large ({width}x{height})")
            image.verify()
    except InvalidAnswer:
        raise
    except Exception as exc:  # Pillow raises many types for broken data
        raise InvalidAnswer(f"the image data cannot be decoded ({type(exc).__name__})") from None
    return width, height


class RenderSteps:
    """Image generation through the gate, and the files it leaves in the run folder."""

    def __init__(self, gate: Gate, providers: Providers, store: RunStore, max_rephrases: int) -> None:
        self.gate = gate
        self.providers = providers
        self.store = store
        self.max_rephrases = max_rephrases
        self.digests: dict[str, str] = {}  # image path -> digest of the bytes the provider returned

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
            # decoding the header and writing the file block: off the event loop, so other lanes go on
            width, height, path, digest = await asyncio.to_thread(self._save_image, candidate_id, answer.data,
                                                                  answer.format, chunks)
            result: dict[str, Any] = {"path": path, "format": answer.format, "width": width, "height": height,
                                      "sha256": digest}
            if answer.revised_prompt:
                result["revised_prompt"] = answer.revised_prompt
            return StepAnswer(result, answer.usage, answer.meta)

        def still_valid(result: dict[str, Any]) -> bool:
            return "rejected" in result or (self.store.path / result["path"]).is_file()

        result = await self.gate.call(key, "image", attempt, still_valid=still_valid, inputs=inputs_of("image", prompt))
        if "path" in result:  # the judges' inputs name the picture by its digest, so a new picture is judged anew
            self.digests[result["path"]] = result.get("sha256", "")
        return result

    def _save_image(self, candidate_id: str, data: bytes, fmt: str,
                    chunks: dict[str, str]) -> tuple[int, int, str, str]:
        """Check the image, label a PNG with its text chunks, write it atomically:
        (width, height, path, digest of the bytes as the provider sent them)."""
        width, height = check_image(data)
        digest = hashlib.sha256(data).hexdigest()[:16]
        if fmt == "png":
            data = pngmeta.with_text(data, chunks)
        return width, height, self.store.write_image(candidate_id, data, fmt), digest

    async def annotate(self, image: str, entries: dict[str, str]) -> None:
        """Store scores in the PNG's text chunks (no pixel re-encode); other formats are left as they are.
        The rewrite runs in a worker thread: file I/O on the event loop would delay every other lane."""
        await asyncio.to_thread(self._annotate, self.store.path / image, entries)

    @staticmethod
    def _annotate(path: Path, entries: dict[str, str]) -> None:
        if path.suffix == ".png" and path.is_file():
            atomic_write(path, pngmeta.with_text(path.read_bytes(), entries))
