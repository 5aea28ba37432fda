"""One vision input per image (issue 13): made once when the picture lands, read by every judge of it
(both judges, the checklist judge, pairwise comparisons, re-judgings), kept in the run folder so that a
resume does not make it again, made again when it is damaged; the provider sends it without decoding it.
Over the loopback OpenAI-compatible server, with pictures larger than `vision.vision_max_side`."""

from __future__ import annotations

import base64
import io
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))

from fake_openai_server import FakeConfig, FakeOpenAI  # noqa: E402

from beamsearch import shrink  # noqa: E402
from beamsearch.app import resume_run, start_run  # noqa: E402
from beamsearch.images import digest_of  # noqa: E402
from beamsearch.precedence import resolve  # noqa: E402
from beamsearch.providers import openai as openai_provider  # noqa: E402
from beamsearch.vision_inputs import input_name  # noqa: E402

KEY_ENV = "FAKE_OPENAI_VISION_KEY"
KEY = "sk-test-vision-inputs-0123456789"
IDEA = "a red lighthouse by the sea at night"
SIDE, MAX_SIDE = 640, 200


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv(KEY_ENV, KEY)
    with FakeOpenAI(FakeConfig(api_key=KEY, image_side=SIDE)) as fake:
        yield fake


@pytest.fixture
def shrinks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every shrink made anywhere (a vision input, or a provider shrinking a picture it was sent)."""
    made: list[int] = []
    real = shrink.to_jpeg

    def counting(data: bytes, max_side: int) -> Any:
        made.append(max_side)
        return real(data, max_side)

    monkeypatch.setattr(shrink, "to_jpeg", counting)
    monkeypatch.setattr(openai_provider, "to_jpeg", counting)
    return made


def flags(server: FakeOpenAI, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "prompt": IDEA, "n": 4, "m": 2, "iterations": 2, "provider": "openai", "runs_dir": str(tmp_path / "runs"),
        "retries.backoff_initial": 0.01, "retries.backoff_max": 0.05, "image.size": "64x64",
        "vision.vision_max_side": MAX_SIDE, "ranking": "pairwise", "alignment": "checklist",
    }
    for role in ("text", "image", "vision"):
        out.update({f"{role}.base_url": server.url, f"{role}.api_key_env": KEY_ENV, f"{role}.timeout": 10.0})
    return {**out, **extra}


def events_of(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines() if line]


def sent_images(server: FakeOpenAI) -> list[bytes]:
    """The picture bytes of every vision request the server received."""
    out = []
    for body in server.bodies:
        for message in body.get("messages", []):
            if isinstance(message.get("content"), list):
                for part in message["content"]:
                    if part.get("type") == "image_url":
                        out.append(base64.b64decode(part["image_url"]["url"].split(",", 1)[1]))
    return out


def image_steps(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == "step" and e["service"] == "image"]


async def test_every_judge_of_a_picture_reads_its_one_prepared_input(server: FakeOpenAI, shrinks: list[int],
                                                                    tmp_path: Path) -> None:
    result = await start_run(resolve(None, flags(server, tmp_path), environ={}))
    assert result.status == "done", result.error
    folder = result.store.path
    events = events_of(folder)
    pictures = image_steps(events)
    vision = [e for e in events if e["type"] == "step" and e["service"] == "vision"]
    tasks = {e["key"].rsplit("/", 1)[1] for e in vision}
    assert {"judge_checklist", "judge_aesthetic", "judge_pairwise"} <= tasks
    assert any("/keep-" in e["key"] for e in vision), "kept parents were judged again"
    # one shrink per picture, however many vision calls looked at it
    assert len(shrinks) == len(pictures) and len(vision) > 2 * len(pictures)
    inputs = {}
    for step in pictures:
        record = step["result"]["vision"]
        assert record["path"] == input_name(step["result"]["path"]) and record["max_side"] == MAX_SIDE
        inputs[record["path"]] = (folder / record["path"]).read_bytes()
    sent = sent_images(server)
    assert len(sent) == sum(len(re.findall(r"pair-", e["key"])) + 1 for e in vision)  # pairwise sends two
    assert all(data in inputs.values() for data in sent), "every judge sent a prepared input as it is"
    for data in sent:
        with Image.open(io.BytesIO(data)) as picture:
            assert picture.format == "JPEG" and max(picture.size) == MAX_SIDE


async def test_resume_reuses_the_inputs_and_remakes_a_damaged_one(server: FakeOpenAI, shrinks: list[int],
                                                                 tmp_path: Path) -> None:
    first = await start_run(resolve(None, flags(server, tmp_path), environ={}))
    assert first.status == "done", first.error
    folder = first.store.path
    before = image_steps(events_of(folder))
    assert len(shrinks) == len(before)
    damaged = folder / before[0]["result"]["vision"]["path"]
    damaged.write_bytes(damaged.read_bytes()[:-40])  # cut short: its digest no longer matches
    shrinks.clear()
    endpoints = {f"{role}.{key}": value for role in ("text", "image", "vision")
                 for key, value in (("base_url", server.url), ("api_key_env", KEY_ENV))}
    resumed = await resume_run(folder, flags={"iterations": 3, **endpoints}, environ={})
    assert resumed.status == "done", resumed.error
    new = image_steps(events_of(folder))[len(before):]
    assert new, "the extra iteration made pictures"
    assert len(shrinks) == len(new) + 1, "only the new pictures and the damaged input were shrunk"
    with Image.open(damaged) as remade:
        remade.load()
        assert max(remade.size) == MAX_SIDE


async def test_a_picture_that_fits_is_its_own_input(server: FakeOpenAI, shrinks: list[int], tmp_path: Path) -> None:
    server.config.image_side = MAX_SIDE
    result = await start_run(resolve(None, flags(server, tmp_path, ranking="scores", alignment="rating"), environ={}))
    assert result.status == "done", result.error
    assert shrinks == [] and not list((result.store.path / "images").glob("*.vision.jpg"))
    assert all("vision" not in e["result"] for e in image_steps(events_of(result.store.path)))
    pictures = {e["result"]["sha256"] for e in image_steps(events_of(result.store.path))}
    sent = sent_images(server)
    assert sent and all(digest_of(data, "png") in pictures for data in sent), "sent as it is (its labels aside)"


async def test_the_simulator_judges_the_picture_as_painted(tmp_path: Path) -> None:
    settings = resolve(None, {"prompt": IDEA, "n": 3, "m": 1, "iterations": 1, "provider": "sim",
                              "runs_dir": str(tmp_path), "sim.image_size": 400, "vision.vision_max_side": 100}, environ={})
    result = await start_run(settings)
    assert result.status == "done", result.error
    assert not list((result.store.path / "images").glob("*.vision.jpg"))
    judged = [e for e in events_of(result.store.path) if e["type"] == "step" and e["service"] == "vision"]
    assert judged and all(e["meta"]["sim_image"].endswith(".png") for e in judged)


def test_a_transparent_picture_is_laid_on_white() -> None:
    picture = Image.new("RGBA", (300, 150), (0, 0, 0, 0))
    picture.paste((200, 0, 0, 255), (0, 0, 150, 150))
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    data, size = shrink.to_jpeg(buffer.getvalue(), 100)
    with Image.open(io.BytesIO(data)) as out:
        assert out.format == "JPEG" and out.mode == "RGB" and out.size == size == (100, 50)
        left, right = out.getpixel((20, 25)), out.getpixel((80, 25))
    assert left[0] > 150 and left[1] < 60, "the opaque half keeps its colour"
    assert min(right) > 240, "the transparent half is white"
