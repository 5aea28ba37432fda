"""Batches in the web view, over real HTTP: listed at `/` beside the runs (ideas done, spend, status, live);
a batch's page streams its batch.jsonl (line numbers as ids, lines as they are appended); each idea's
run page, stream and images one level down, `/runs/{batch}/{idea}/`, confined like a run's; a batch
folder is untrusted: its log never names a path the server follows out of it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from batchhelp import FIVE, batch_events, batch_of
from webhelp import browser_page, make_run, raw_get, sse

from beamsearch.batch_index import show_batch
from beamsearch.batch_store import BatchStore
from beamsearch.serve import serving
from beamsearch.store import RunStore

RUN = "20261121-143002-a-test-idea"
SPENDY = [{"type": "run_started"},
          {"type": "step", "key": "i0/c00/expand_what", "service": "text", "result": {"text": "x"}, "cost": 5.0}]


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One batch of three ideas, made offline by the simulator (the first run: later tests copy it)."""
    import asyncio

    tmp = tmp_path_factory.mktemp("batch")
    result = asyncio.run(batch_of(tmp, FIVE[:3], n=2, m=1))
    assert result.status == "done"
    return result.path


@pytest.fixture
def batch(made: Path, tmp_path: Path) -> Path:
    """A copy of the batch in a runs folder of this test's own, beside one ordinary run."""
    import shutil

    runs = tmp_path / "runs"
    make_run(runs, RUN, [{"type": "run_started"}])
    return Path(shutil.copytree(made, runs / made.name, symlinks=True))


def ideas_of(batch: Path) -> list[str]:
    return [e["run"] for e in batch_events(batch) if e["type"] == "idea_finished"]


def add_line(batch: Path, event: dict) -> None:
    with open(batch / "batch.jsonl", "ab") as handle:
        handle.write(json.dumps(event).encode() + b"\n")


async def next_named(reader, name: str):
    event = await reader.next()
    while event.event != name:
        event = await reader.next()
    return event


async def test_a_batch_is_listed_beside_the_runs_with_its_ideas_spend_and_status_live(batch: Path) -> None:
    shown = show_batch(batch)
    async with serving(batch.parent, port=0) as server, sse(server.url + "events") as reader:
        listing = (await next_named(reader, "runs")).json()
        entries = {e["name"]: e for e in listing["runs"]}
        assert set(entries) == {RUN, batch.name} and entries[RUN]["kind"] == "run"
        entry = entries[batch.name]
        assert (entry["kind"], entry["status"], entry["ideas"], entry["ideas_done"]) == ("batch", "done", 3, 3)
        assert entry["cost_usd"] == shown["cost_usd"] > 0 and entry["simulated"] is True
        best = max(shown["rows"], key=lambda r: r["best_total"])
        assert entry["best"] == {"idea": best["idea"], "run": best["run"], "total": best["best_total"],
                                 "image": best["best_image"]}
        # live: the batch resumed in another process; idea 1 started again and has spent 5 so far
        idea = make_run(batch, "20261121-150000-idea-one-again", SPENDY)
        holder, running = BatchStore(batch), RunStore(idea)  # both locked, as the batch's process holds them
        holder.lock()
        running.lock()
        try:
            add_line(batch, {"type": "batch_started", "resumed": True, "ideas": 3})
            add_line(batch, {"type": "idea_started", "idea": 1, "run": idea.name, "resumed": True})
            later = next(e for e in (await next_named(reader, "runs")).json()["runs"] if e["name"] == batch.name)
            while later["status"] != "running":
                later = next(e for e in (await next_named(reader, "runs")).json()["runs"] if e["name"] == batch.name)
        finally:
            running.unlock()
            holder.close()
        assert later["ideas_done"] == 2 and later["counts"] == {"done": 2, "running": 1}
        idea_one = next(r for r in shown["rows"] if r["idea"] == 1)["cost_usd"]
        assert later["cost_usd"] == pytest.approx(shown["cost_usd"] - idea_one + 5.0)  # read from its own log


async def test_the_batch_page_shows_every_idea_and_streams_its_log_as_it_is_appended(batch: Path) -> None:
    lines = batch_events(batch)
    async with serving(batch.parent, port=0) as server:
        url = server.run_url(batch.name)
        status, _, body = await raw_get(server.port, f"/runs/{batch.name}/")
        assert status == 200 and b'src="/static/batch.js"' in body
        async with sse(url + "events") as reader:
            meta = await reader.next()
            assert meta.event == "meta" and meta.json()["kind"] == "batch" and meta.json()["running"] is False
            assert [i["prompt"] for i in meta.json()["ideas"]] == FIVE[:3]
            logged = [await reader.next() for _ in lines]
            assert [e.id for e in logged] == [str(n) for n in range(1, len(lines) + 1)]
            assert [e.json() for e in logged] == lines
            assert sorted(e.json()["idea"] for e in logged if e.json()["type"] == "idea_finished") == [1, 2, 3]
            add_line(batch, {"type": "idea_started", "idea": 2, "run": ideas_of(batch)[1], "resumed": True})
            started = await next_named(reader, "message")
            assert started.id == str(len(lines) + 1) and started.json()["type"] == "idea_started"
            add_line(batch, {"type": "idea_finished", "idea": 2, "run": ideas_of(batch)[1], "status": "done"})
            finished = await next_named(reader, "message")
            assert finished.id == str(len(lines) + 2) and finished.json()["type"] == "idea_finished"
        async with sse(url + "events", last_event_id=str(len(lines))) as reader:  # a reconnect resumes after it
            assert (await next_named(reader, "message")).id == str(len(lines) + 1)


async def test_an_ideas_run_page_its_stream_and_its_images_are_served_like_a_runs(batch: Path) -> None:
    row = show_batch(batch)["rows"][0]
    idea = batch / row["run"]
    events = [line for line in (idea / "events.jsonl").read_text().splitlines() if line.strip()]
    async with serving(batch.parent, port=0) as server:
        base = f"/runs/{batch.name}/{row['run']}/"
        status, _, body = await raw_get(server.port, base)
        assert status == 200 and b'src="/static/run.js"' in body
        status, headers, _ = await raw_get(server.port, base.rstrip("/"))
        assert status == 308 and headers["location"] == base
        status, headers, body = await raw_get(server.port, base + row["best_image"])
        assert (status, headers["content-type"]) == (200, "image/png")
        assert body == (idea / row["best_image"]).read_bytes()
        async with sse(server.url.rstrip("/") + base + "events") as reader:
            meta = await reader.next()
            assert meta.event == "meta" and meta.json()["name"] == row["run"]
            assert meta.json()["settings"]["prompt"] == row["prompt"]
            logged = [await reader.next() for _ in events]
            assert [e.json() for e in logged] == [json.loads(line) for line in events]


async def test_hostile_names_symlinks_and_logs_never_lead_out_of_the_batch(batch: Path, tmp_path: Path) -> None:
    outside = make_run(tmp_path, "20261121-000000-outside", SPENDY)
    (outside / "images" / "i0c00.png").write_bytes(b"outside the batch")
    os.symlink(outside, batch / "20261121-000000-linked")  # an idea folder that is a symlink out
    idea = ideas_of(batch)[0]
    holder = BatchStore(batch)
    holder.lock()
    try:  # the log names, for ideas still going, a symlink out, a run beside the batch, a path out
        for number, run in ((1, "20261121-000000-linked"), (2, f"../../{outside.name}"), (3, str(outside))):
            add_line(batch, {"type": "idea_started", "idea": number, "run": run})
        async with serving(batch.parent, port=0) as server:
            for target in (f"/runs/{batch.name}/20261121-000000-linked/", f"/runs/{batch.name}/20261121-000000-linked/events",
                           f"/runs/{batch.name}/20261121-000000-linked/images/i0c00.png",
                           f"/runs/{batch.name}/../{RUN}/", f"/runs/{batch.name}/%2e%2e/", f"/runs/{batch.name}/../",
                           f"/runs/{batch.name}/..%2F{RUN}/", f"/runs/{batch.name}/%2e%2e/events",
                           f"/runs/{batch.name}/{idea}/..%2F..%2F{RUN}/events", f"/runs/{batch.name}/.hidden/",
                           f"/runs/{RUN}/{idea}/", f"/runs/{RUN}/images/", f"/runs/{batch.name}/{idea}/images/..%2Fevents.jsonl",
                           f"/runs/{batch.name}/{idea}/run.yaml", f"/runs/{batch.name}/batch.yaml",
                           f"/runs/{batch.name}/{idea}/../../{RUN}/events"):
                status, _, body = await raw_get(server.port, target)
                assert status in (404, 400), (target, status)
                assert b"outside the batch" not in body and b"data:" not in body
            async with sse(server.url + "events") as reader:
                entry = next(e for e in (await next_named(reader, "runs")).json()["runs"] if e["name"] == batch.name)
    finally:
        holder.close()
    assert entry["status"] == "running" and entry["ideas_done"] == 0
    assert entry["cost_usd"] == 0.0  # none of the three followed (each would add the 5.0 the outside run spent)


CARDS = """() => [...document.querySelectorAll("#ideas .card")].map((c) => ({
  idea: Number(c.dataset.idea), status: c.dataset.status, link: (c.querySelector("a.thumb") || {}).pathname || null,
  image: Boolean(c.querySelector("img") && c.querySelector("img").complete && c.querySelector("img").naturalWidth > 0),
  prompt: c.querySelector(".prompt").textContent }))"""


async def test_in_a_browser_the_batch_page_fills_its_cards_as_ideas_finish(batch: Path, tmp_path: Path) -> None:
    lines = (batch / "batch.jsonl").read_text().splitlines(keepends=True)
    last = next(i for i in reversed(range(len(lines))) if json.loads(lines[i])["type"] == "idea_finished")
    finished, held = json.loads(lines[last]), lines[last]
    (batch / "batch.jsonl").write_text("".join(lines[:last] + lines[last + 1:-1]))  # that idea, and the end, not yet
    runs = {row["idea"]: row["run"] for row in show_batch(batch)["rows"]}
    async with serving(batch.parent, port=0) as server, browser_page(tmp_path / "profile") as page:
        await page.goto(server.run_url(batch.name))
        await page.evaluate("window.__samePage = true")
        await page.wait_for_function("() => document.querySelectorAll('#ideas .card img').length === 2", timeout=10_000)
        cards = await page.evaluate(CARDS)
        assert [c["prompt"] for c in cards] == FIVE[:3]
        assert {c["idea"]: c["status"] for c in cards} == {1: "done", 2: "done", 3: "done", finished["idea"]: "stopped"}
        assert all(c["link"] == f"/runs/{batch.name}/{runs[c['idea']]}/" for c in cards)
        with open(batch / "batch.jsonl", "a") as handle:
            handle.write(held)
        await page.wait_for_function("() => [...document.querySelectorAll('#ideas .card img')]"
                                     ".filter((i) => i.complete && i.naturalWidth > 0).length === 3", timeout=10_000)
        cards = await page.evaluate(CARDS)
        assert [c["status"] for c in cards] == ["done"] * 3 and all(c["image"] for c in cards)
        assert await page.evaluate("window.__samePage === true")  # live, not reloaded
        await page.goto(server.url)  # the list: the batch beside the run, with its best idea's image
        await page.wait_for_function("() => [...document.querySelectorAll('.run[data-kind=batch] img')]"
                                     ".some((i) => i.complete && i.naturalWidth > 0)", timeout=10_000)
        line = await page.evaluate("() => document.querySelector('.run[data-kind=batch] .muted').textContent")
        assert line.startswith("3 of 3 ideas done · best ")
        await page.goto(server.run_url(batch.name))
        await page.click(f'#ideas .card[data-idea="{finished["idea"]}"] a.thumb', timeout=10_000)  # on to that idea's own run page
        await page.wait_for_function("() => document.body.dataset.status === 'done'", timeout=10_000)
        up = await page.evaluate("() => [document.getElementById('up').hidden, document.getElementById('up').pathname]")
        assert up == [False, f"/runs/{batch.name}/"]
        assert await page.evaluate("() => document.querySelectorAll('#lanes .card img').length") > 0


def test_batch_serve_shows_the_batch_live_in_its_own_process(tmp_path: Path) -> None:
    import subprocess
    import sys

    import httpx2
    from batchhelp import ideas_file

    env = {k: v for k, v in os.environ.items() if not k.startswith("BEAMSEARCH_")}
    env.update({"BEAMSEARCH_SIM__LATENCY__TEXT__MEAN": "0.05", "BEAMSEARCH_SIM__LATENCY__IMAGE__MEAN": "1.0",
                "BEAMSEARCH_SIM__LATENCY__VISION__MEAN": "0.05"})
    command = [sys.executable, "-m", "beamsearch", "batch", str(ideas_file(tmp_path, FIVE[:2])), "--provider", "sim",
               "-n", "2", "-m", "1", "--iterations", "2", "--runs-dir", str(tmp_path / "runs"), "--serve", "--port", "0",
               "--quiet"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    try:
        line = process.stderr.readline()
        assert line.startswith("Watch it live at http://127.0.0.1:"), line
        url = line.split(" at ", 1)[1].strip()
        with httpx2.Client(trust_env=False, timeout=10) as client:
            page = client.get(url)
            assert page.status_code == 200 and 'src="/static/batch.js"' in page.text
            with client.stream("GET", url + "events") as stream:
                data = next(line for line in stream.iter_lines() if line.startswith("data:"))
        meta = json.loads(data.removeprefix("data:"))
        assert meta["kind"] == "batch" and meta["running"] is True  # served while the batch runs, by its process
        assert [i["prompt"] for i in meta["ideas"]] == FIVE[:2]
        process.communicate(timeout=60)
        assert process.returncode == 0
    finally:
        if process.poll() is None:
            process.kill()


def test_serve_given_a_batch_folder_opens_its_page(batch: Path) -> None:
    from beamsearch.serve import where_to_serve

    assert where_to_serve(batch) == (batch.resolve().parent, batch.name)
