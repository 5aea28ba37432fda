"""Issue 14, finding 7: a bad image fails its lane, never the run. A fresh answer with bytes after IEND,
cut short, or in another format than it claims is an invalid answer (retried, and paid for); on resume
a bad file in images/ is redone, as the README says."""

from __future__ import annotations

import dataclasses
import io
import json
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image
from simhelp import copied_run, finished_run, read_events, sim_settings
from test_bad_folders import invoke

from beamsearch.app import start_run
from beamsearch.providers.base import ImageRequest, ImageResult, Providers
from beamsearch.providers.sim import Simulator


def spoil_after_iend(data: bytes) -> bytes:
    return data + b"\x00\x00\x00\x05junk!"


def spoil_cut_short(data: bytes) -> bytes:
    return data[: len(data) * 2 // 3]


def spoil_jpeg_called_png(data: bytes) -> bytes:
    buffer = io.BytesIO()
    with Image.open(io.BytesIO(data)) as image:
        image.convert("RGB").save(buffer, "JPEG")
    return buffer.getvalue()


class Spoiling:
    """The simulator, but the first answer for every image step is spoiled by `spoil` (still 'png')."""

    def __init__(self, simulator: Simulator, spoil) -> None:
        self.sim = simulator
        self.spoil = spoil
        self.seen: Counter[str] = Counter()

    async def complete(self, request):
        return await self.sim.complete(request)

    async def judge(self, request):
        return await self.sim.judge(request)

    async def generate(self, request: ImageRequest) -> ImageResult:
        answer = await self.sim.generate(request)
        self.seen[request.key] += 1
        if self.seen[request.key] == 1:
            return dataclasses.replace(answer, data=self.spoil(answer.data))
        return answer

    def providers(self) -> Providers:
        return Providers(text=self, image=self, vision=self, labels=dict.fromkeys(("text", "image", "vision"), "sim"))


@pytest.mark.parametrize("spoil", [spoil_after_iend, spoil_cut_short, spoil_jpeg_called_png])
async def test_a_bad_fresh_picture_is_retried_not_a_crash(tmp_path, spoil) -> None:
    settings = sim_settings(tmp_path, n=2, m=1, iterations=1, prompt="a red kite", **{"retries.backoff_initial": 0.0,
                                                                                   "retries.backoff_max": 0.0})
    spoiling = Spoiling(Simulator(settings.seed, settings.sim), spoil)
    result = await start_run(settings, providers=spoiling.providers())
    assert result.status == "done", result.summary.get("reason")
    images = [e for e in read_events(result.store.path) if e["type"] == "step" and e["service"] == "image"]
    assert len(images) == 2 and all(e["attempts"] == 2 for e in images)
    for e in images:
        data = (result.store.path / e["result"]["path"]).read_bytes()
        assert data.startswith(b"\x89PNG") and data.endswith(b"IEND\xaeB`\x82")


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    return finished_run(tmp_path_factory.mktemp("badpng"), n=3, m=1, iterations=2)


@pytest.fixture
def run_dir(finished, tmp_path) -> Path:
    return copied_run(finished, tmp_path)


@pytest.mark.parametrize("spoil", [spoil_after_iend, spoil_cut_short, spoil_jpeg_called_png])
def test_a_bad_file_in_images_is_redone_on_resume(run_dir, spoil) -> None:
    image = run_dir / "images" / "i0c01.png"
    image.write_bytes(spoil(image.read_bytes()))
    result = invoke("resume", str(run_dir), "-i", "3", "--quiet")
    assert result.exit_code == 0, result.output
    keys = Counter(e["key"] for e in read_events(run_dir) if e["type"] == "step")
    assert keys["i0/c01/image"] == 2  # redone
    assert all(count == 1 for key, count in keys.items() if key.startswith("i0/") and "c01" not in key)
    data = image.read_bytes()
    assert data.startswith(b"\x89PNG") and data.endswith(b"IEND\xaeB`\x82")
    shown = invoke("show", str(run_dir), "--json")
    assert shown.exit_code == 0 and len(json.loads(shown.stdout)["iterations"]) == 3


def test_a_picture_whose_pixels_were_changed_is_redone(run_dir) -> None:
    """The digest recorded when the picture arrived names those bytes (text chunks aside)."""
    image = run_dir / "images" / "i0c02.png"
    with Image.open(image) as picture:
        other = picture.convert("RGB").transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    other.save(image, "PNG")
    result = invoke("resume", str(run_dir), "-i", "3", "--quiet")
    assert result.exit_code == 0, result.output
    keys = Counter(e["key"] for e in read_events(run_dir) if e["type"] == "step")
    assert keys["i0/c02/image"] == 2 and keys["i0/c00/image"] == 1
