"""The run's event stream over real HTTP: the log from its first line with line numbers as ids, then
live; Last-Event-ID resumes after a line; a torn line is never sent in part; progress from the bus."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from webhelp import append, make_run, sse

from beamsearch.progress import from_data
from beamsearch.serve import LiveBus, serving

NAME = "20261121-143002-a-test-idea"


def steps(*keys: str) -> list[dict]:
    return [{"type": "step", "key": key, "service": "text", "result": {"text": key}, "ts": 1.0} for key in keys]


async def logged(reader, count: int) -> list:
    events = []
    while len(events) < count:
        event = await reader.next()
        if event.event in ("message", "problem"):
            events.append(event)
    return events


async def nothing_more(reader, wait: float = 0.8) -> None:
    with pytest.raises(TimeoutError):
        event = await reader.next(wait)
        while event.event == "meta":  # a status check may say the same again; no line may come
            event = await reader.next(wait)


async def test_the_stream_starts_with_the_run_then_every_line_numbered(tmp_path: Path) -> None:
    make_run(tmp_path, NAME, raw_tail=b"".join(json.dumps(e).encode() + b"\n\n" for e in steps("a", "b", "c")))
    async with serving(tmp_path, port=0) as server, sse(server.run_url(NAME) + "events") as reader:
        meta = await reader.next()
        assert meta.event == "meta" and meta.retry == 1000 and meta.id is None
        assert meta.json()["name"] == NAME and meta.json()["settings"]["iterations"] == 2
        assert meta.json()["running"] is False and meta.json()["live"] is False
        events = await logged(reader, 3)
        assert [e.id for e in events] == ["1", "3", "5"]  # line numbers: the blank lines count
        assert [e.json()["key"] for e in events] == ["a", "b", "c"]
        append(tmp_path / NAME, json.dumps(steps("d")[0]).encode() + b"\n")
        (later,) = await logged(reader, 1)
        assert later.id == "7" and later.json()["key"] == "d"


async def test_last_event_id_resumes_after_that_line_and_a_bad_one_starts_again(tmp_path: Path) -> None:
    make_run(tmp_path, NAME, steps("a", "b", "c", "d"))
    async with serving(tmp_path, port=0) as server:
        url = server.run_url(NAME) + "events"
        async with sse(url, last_event_id="2") as reader:
            events = await logged(reader, 2)
            assert [e.id for e in events] == ["3", "4"]
            await nothing_more(reader)
        async with sse(url, last_event_id="4") as reader:
            await nothing_more(reader)  # nothing after the last line: nothing is sent again
        async with sse(url, last_event_id="not-a-line") as reader:
            assert [e.id for e in await logged(reader, 4)] == ["1", "2", "3", "4"]
        assert server.streams.resumed == 2


async def test_a_torn_last_line_is_sent_only_once_it_is_whole(tmp_path: Path) -> None:
    whole = json.dumps(steps("torn")[0]).encode() + b"\n"
    folder = make_run(tmp_path, NAME, steps("a"), raw_tail=whole[:15])
    async with serving(tmp_path, port=0) as server, sse(server.run_url(NAME) + "events") as reader:
        assert [e.id for e in await logged(reader, 1)] == ["1"]
        await nothing_more(reader)
        append(folder, whole[15:-1])
        await nothing_more(reader)
        append(folder, b"\n")
        (event,) = await logged(reader, 1)
        assert event.id == "2" and event.json()["key"] == "torn"


async def test_a_line_that_is_not_an_event_is_named_by_its_id_and_the_stream_goes_on(tmp_path: Path) -> None:
    make_run(tmp_path, NAME, steps("a"), raw_tail=b"{broken\n" + b'{"type": "step", "cost": NaN}\n'
             + json.dumps(steps("b")[0]).encode() + b"\n")
    async with serving(tmp_path, port=0) as server, sse(server.run_url(NAME) + "events") as reader:
        events = await logged(reader, 4)
        assert [(e.id, e.event) for e in events] == [("1", "message"), ("2", "problem"), ("3", "problem"), ("4", "message")]
        assert events[1].json() == {"line": 2, "problem": "line 2 is not JSON"}
        assert "not finite" in events[2].json()["problem"]


async def test_a_closed_stream_resumed_with_its_last_id_repeats_no_line(tmp_path: Path) -> None:
    folder = make_run(tmp_path, NAME, steps("a", "b", "c"))
    async with serving(tmp_path, port=0) as server:
        url = server.run_url(NAME) + "events"
        async with sse(url) as reader:
            first = await logged(reader, 3)
            server.streams.close_all()  # the server drops the connection, as a restart or a network would
            with pytest.raises((StopAsyncIteration, TimeoutError)):
                while True:
                    await reader.next(2.0)
            last = reader.last_id
        append(folder, b"".join(json.dumps(e).encode() + b"\n" for e in steps("d", "e")))
        async with sse(url, last_event_id=last) as reader:
            second = await logged(reader, 2)
            await nothing_more(reader)
    ids = [e.id for e in first + second]
    assert ids == ["1", "2", "3", "4", "5"]


async def test_progress_from_the_bus_comes_in_the_order_the_run_published_it(tmp_path: Path) -> None:
    folder = make_run(tmp_path, NAME, steps("a"))
    bus = LiveBus(folder)
    async with serving(tmp_path, port=0, live_bus=bus) as server, sse(server.run_url(NAME) + "events") as reader:
        meta = await reader.next()
        assert meta.json()["live"] is True
        await logged(reader, 1)
        bus(from_data({"type": "stage", "id": "i0c00", "stage": "image", "iteration": 0}))
        event = steps("b")[0]
        append(folder, json.dumps(event).encode() + b"\n")  # the store appends, then the run publishes
        bus(from_data(event))
        bus(from_data({"type": "stage", "id": "i0c00", "stage": "judge", "iteration": 0}))
        got = [await reader.next() for _ in range(3)]
        assert [(e.event, e.id) for e in got] == [("live", None), ("message", "2"), ("live", None)]
        assert [got[0].json()["stage"], got[2].json()["stage"]] == ["image", "judge"]
        bus.attach(tmp_path / "another-run")  # a batch's next run: this page hears no more of it
        bus(from_data({"type": "stage", "id": "i0c01", "stage": "image", "iteration": 0}))
        await nothing_more(reader)


async def test_a_run_without_a_page_reads_nothing_and_queues_nothing(tmp_path: Path) -> None:
    folder = make_run(tmp_path, NAME, steps("a"))
    bus = LiveBus(folder)
    async with serving(tmp_path, port=0, live_bus=bus) as server:
        for _ in range(100):
            bus(from_data({"type": "stage", "id": "i0c00", "stage": "image", "iteration": 0}))
        assert bus.connected == 0 and server.streams.opened == 0
        async with sse(server.run_url(NAME) + "events") as reader:
            await reader.next()
            assert bus.connected == 1 and server.streams.opened == 1
        for _ in range(50):  # the page has gone: its channel goes with it
            if bus.connected == 0:
                break
            await asyncio.sleep(0.05)
        assert bus.connected == 0


async def test_the_list_of_runs_is_sent_and_sent_again_when_a_run_changes(tmp_path: Path) -> None:
    candidate = {"type": "candidate", "id": "i0c00", "iteration": 0, "index": 0, "parent": None, "what": "w",
                 "how": "h", "prompt": "p", "image": "images/i0c00.png", "total": 61.5, "status": "done"}
    folder = make_run(tmp_path, NAME, [{"type": "run_started", "resumed": False}] + steps("a"))
    async with serving(tmp_path, port=0) as server, sse(server.url + "events") as reader:
        first = await reader.next()
        assert first.event == "runs"
        (run,) = first.json()["runs"]
        assert run["name"] == NAME and run["status"] == "stopped" and run["best"] is None and run["prompt"] == "a test idea"
        append(folder, json.dumps(candidate).encode() + b"\n" + b'{"type": "run_finished", "status": "done", "reason": "ok"}\n')
        second = await reader.next(5.0)
        (run,) = second.json()["runs"]
        assert run["status"] == "done" and run["best"] == {"id": "i0c00", "total": 61.5, "image": "images/i0c00.png"}
