"""The run folder: complete, atomic, annotated PNGs, torn-line tolerance, safe names."""

from __future__ import annotations

import json

import pytest
import yaml
from PIL import Image
from simhelp import read_events, sim_settings

from beamsearch import pngmeta
from beamsearch.app import start_run
from beamsearch.errors import RunFolderError
from beamsearch.events import Step
from beamsearch.store import RunStore, slug


async def test_a_run_leaves_a_complete_folder(tmp_path) -> None:
    result = await start_run(sim_settings(tmp_path, n=4, m=2, iterations=2))
    run = result.store.path
    for name in ("run.yaml", "events.jsonl", "summary.json", "best.png"):
        assert (run / name).is_file(), name
    document = yaml.safe_load((run / "run.yaml").read_text())
    assert document["settings"]["n"] == 4 and document["version"]
    events = read_events(run)
    images = sorted(p.name for p in (run / "images").iterdir())
    assert images == sorted({f"{c['id']}.png" for c in events if c["type"] == "candidate"})
    summary = json.loads((run / "summary.json").read_text())
    assert summary["best"]["id"] in summary["lineage"] and summary["lineage"][0].startswith("i0")
    assert summary["usage"]["image"]["calls"] == 8
    best = summary["best"]
    assert (run / "best.png").read_bytes() == (run / best["image"]).read_bytes()
    chunks = pngmeta.read_text((run / best["image"]).read_bytes())
    assert chunks["beamsearch:id"] == best["id"]
    assert chunks["beamsearch:what"] == best["what"] and chunks["beamsearch:how"] == best["how"]
    assert float(chunks["beamsearch:total"]) == best["total"]


async def test_image_event_comes_after_its_file(tmp_path) -> None:
    seen: list[bool] = []

    def check(event: Step) -> None:
        if event.type == "step" and event.service == "image":
            seen.append((result_dir[0] / event.result["path"]).is_file())

    result_dir: list = []
    settings = sim_settings(tmp_path, n=3, m=1, iterations=1)

    class Probe:
        def __call__(self, event: Step) -> None:
            if not result_dir and event.type == "run_started":
                result_dir.append(next((tmp_path / "runs").iterdir()))
            check(event)

    await start_run(settings, listeners=[Probe()])
    assert seen == [True, True, True]


def test_text_chunks_do_not_touch_pixels(tmp_path) -> None:
    path = tmp_path / "a.png"
    Image.new("RGB", (40, 30), (10, 200, 30)).save(path)
    original = path.read_bytes()
    tagged = pngmeta.with_text(original, {"beamsearch:what": "a café ☕", "beamsearch:id": "i0c00"})
    retagged = pngmeta.with_text(tagged, {"beamsearch:id": "i0c01"})
    idat = [raw for kind, _, raw in pngmeta._chunks(original) if kind == b"IDAT"]
    assert idat == [raw for kind, _, raw in pngmeta._chunks(retagged) if kind == b"IDAT"]
    assert pngmeta.read_text(retagged) == {"beamsearch:what": "a café ☕", "beamsearch:id": "i0c01"}
    path.write_bytes(retagged)
    assert Image.open(path).getpixel((5, 5)) == (10, 200, 30)


def step(key: str) -> Step:
    return Step(key=key, service="text", result={"text": key})


def test_torn_last_line_is_ignored_with_a_warning(tmp_path) -> None:
    store = RunStore.create(tmp_path, "x", {"prompt": "x"})
    store.append(step("a"))
    store.append(step("b"))
    store.close()
    with open(store.path / "events.jsonl", "a") as handle:
        handle.write('{"type": "step", "key": "c", "resu')
    reopened = RunStore.open(store.path)
    assert [e.key for e in reopened.read_events()] == ["a", "b"]
    assert "cut off" in reopened.warnings[0]
    reopened.append(step("d"))
    reopened.close()
    assert [e.key for e in RunStore.open(store.path).read_events()] == ["a", "b", "d"]


def test_corruption_in_the_middle_is_refused(tmp_path) -> None:
    store = RunStore.create(tmp_path, "x", {"prompt": "x"})
    (store.path / "events.jsonl").write_text('{"type": "run_started"}\nnot json\n{"type": "run_started"}\n')
    with pytest.raises(RunFolderError, match="corrupt at line 2"):
        store.read_events()


def test_folder_names_are_slugged_and_bounded(tmp_path) -> None:
    assert slug("../../etc/passwd") == "etc-passwd"
    assert slug("a/b\\c:d*e?f") == "a-b-c-d-e-f"
    assert len(slug("word " * 100)) <= 48
    assert slug("💥💥") == "run"
    store = RunStore.create(tmp_path, "../escape attempt", {"prompt": "x"})
    assert store.path.parent == tmp_path
    again = RunStore.create(tmp_path, "../escape attempt", {"prompt": "x"}, now=None)
    assert again.path != store.path and again.path.parent == tmp_path


def test_not_a_run_folder(tmp_path) -> None:
    with pytest.raises(RunFolderError, match="is not a beamsearch run"):
        RunStore.open(tmp_path)
    with pytest.raises(RunFolderError, match="is not a folder"):
        RunStore.open(tmp_path / "missing")


def test_second_writer_is_refused(tmp_path) -> None:
    store = RunStore.create(tmp_path, "x", {"prompt": "x"})
    store.lock()
    other = RunStore.open(store.path)
    with pytest.raises(RunFolderError, match="is in use by process"):
        other.lock()
    store.close()
    other.lock()
    other.close()
