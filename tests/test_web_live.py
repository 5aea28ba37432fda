"""The live bus: a run's listener that never waits, with a bounded queue per connected page."""

from __future__ import annotations

from pathlib import Path

from beamsearch.progress import from_data
from beamsearch.web.live import QUEUE_SIZE, WAKE, Channel, LiveBus


def ev(**data):
    """A typed event, as a run's listeners get them."""
    data.setdefault("iteration", 0)
    if data["type"] == "stage":
        data.setdefault("stage", "expand")
    if data["type"] in ("step", "attempt_failed"):
        data.setdefault("service", "image")
    if data["type"] == "step":
        data.setdefault("result", {})
    if data["type"] == "attempt_failed":
        data.setdefault("attempt", 1)
        data.setdefault("error", "x")
    return from_data(data)


def test_with_no_page_connected_publishing_does_nothing() -> None:
    bus = LiveBus(Path("runs/20261121-143002-x"))
    bus(ev(type="stage", id="i0c00"))  # nothing to hand it to, nothing kept
    channel = Channel()
    bus.subscribe(channel)
    bus.unsubscribe(channel)
    bus(ev(type="stage", id="i0c01"))
    assert channel.take() == [] and bus.connected == 0


def test_progress_is_queued_logged_events_only_wake_the_stream_and_others_are_left_out() -> None:
    bus = LiveBus(Path("/somewhere/20261121-143002-x"))
    channel = Channel()
    bus.subscribe(channel)
    bus(ev(type="stage", id="i0c00", stage="image"))
    bus(ev(type="step", key="i0/c00/image"))
    bus(ev(type="pairwise", pair=("i0c00", "i0c01")))  # not a documented progress event: not streamed
    bus(ev(type="attempt_failed", key="i0/c00/image", ts=5.0))
    items = channel.take()
    assert [name for name, _ in items] == ["20261121-143002-x"] * 3
    assert items[0][1]["stage"] == "image" and isinstance(items[0][1]["ts"], float)
    assert items[1][1] == WAKE
    assert items[2][1]["ts"] == 5.0


def test_a_bus_attached_to_no_run_streams_nothing() -> None:
    bus = LiveBus()
    channel = Channel()
    bus.subscribe(channel)
    bus(ev(type="stage", id="i0c00"))
    assert channel.take() == []
    bus.attach(Path("runs/a-run"))
    bus(ev(type="stage", id="i0c00"))
    assert [name for name, _ in channel.take()] == ["a-run"]


def test_a_page_that_never_reads_holds_a_bounded_queue_and_the_newest_progress() -> None:
    bus = LiveBus(Path("runs/r"))
    slow, quick = Channel(), Channel()
    bus.subscribe(slow)
    bus.subscribe(quick)
    for i in range(QUEUE_SIZE * 3):
        bus(ev(type="stage", id=f"i0c{i}", stage="image"))
        if i % 10 == 0:
            quick.take()
    assert len(slow.items) == QUEUE_SIZE and slow.dropped == QUEUE_SIZE * 2
    assert slow.take()[-1][1]["id"] == f"i0c{QUEUE_SIZE * 3 - 1}"  # the oldest made room
    assert quick.dropped == 0


async def test_a_channel_wakes_its_stream_when_something_is_offered_or_it_is_closed() -> None:
    channel = Channel()
    channel.offer("r", WAKE)
    await channel.wait(5.0)  # returns at once: something is there
    assert channel.take() == [("r", WAKE)]
    channel.close()
    await channel.wait(5.0)
    assert channel.closed
