"""Reading a growing log: complete lines only, numbered by position, resumable after a line number."""

from __future__ import annotations

import json
from pathlib import Path

from beamsearch.web import tail as tail_module
from beamsearch.web.tail import LogTail


def write(path: Path, data: bytes) -> None:
    with open(path, "ab") as handle:
        handle.write(data)


def line(**fields: object) -> bytes:
    return json.dumps({"type": "step", **fields}).encode() + b"\n"


def numbers(lines: list) -> list[int]:
    return [entry.number for entry in lines]


def test_complete_lines_are_numbered_by_their_place_in_the_file(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    write(log, line(key="a") + b"\n" + line(key="b") + b"   \n" + line(key="c"))
    found = list(LogTail(log).new_lines())
    assert numbers(found) == [1, 3, 5]  # blank lines count as lines, and are not events
    assert [entry.event["key"] for entry in found] == ["a", "b", "c"]


def test_a_torn_last_line_waits_until_its_newline_is_written(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    whole = line(key="second")
    write(log, line(key="first") + whole[:10])
    reader = LogTail(log)
    assert numbers(list(reader.new_lines())) == [1]
    assert list(reader.new_lines()) == []  # still half a line: nothing, however often it is asked
    assert not reader.has_more()
    write(log, whole[10:-1])
    assert list(reader.new_lines()) == []  # all but the newline
    write(log, b"\n")
    found = list(reader.new_lines())
    assert numbers(found) == [2] and found[0].event["key"] == "second"


def test_reading_after_a_line_number_skips_exactly_those_lines(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    write(log, b"".join(line(key=str(i)) for i in range(1, 6)))
    assert numbers(list(LogTail(log, after=3).new_lines())) == [4, 5]
    assert numbers(list(LogTail(log, after=5).new_lines())) == []
    assert numbers(list(LogTail(log, after=99).new_lines())) == []


def test_a_line_that_is_not_an_event_is_named_with_its_number(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    write(log, line(key="a") + b"not json\n" + b"[1, 2]\n" + b'{"no": "type"}\n' + line(key="b"))
    found = list(LogTail(log).new_lines())
    assert numbers(found) == [1, 2, 3, 4, 5]
    assert [entry.event is None for entry in found] == [False, True, True, True, False]
    assert "line 2 is not JSON" in found[1].problem


def test_a_log_that_does_not_exist_yet_has_no_lines_until_it_does(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    reader = LogTail(log)
    assert list(reader.new_lines()) == []
    write(log, line(key="a"))
    assert numbers(list(reader.new_lines())) == [1]


def test_a_big_log_is_read_in_chunks_and_a_line_longer_than_the_limit_is_skipped(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(tail_module, "MAX_LINE", 4096)
    log = tmp_path / "events.jsonl"
    write(log, b"".join(line(key=str(i)) for i in range(200)))
    write(log, b'{"type": "step", "key": "' + b"x" * 10000 + b'"}\n' + line(key="after"))
    reader = LogTail(log)
    found = []
    while reader.has_more():
        found.extend(reader.read(limit=512))  # many small reads, none loading the whole log
    assert numbers(found) == list(range(1, 203))
    assert found[200].event is None and "longer than" in found[200].problem
    assert found[201].event["key"] == "after"
