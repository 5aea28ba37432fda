"""The real-path benchmark's pieces on their own: the loopback server's prepared images, the join of its
log to a run's events, the rate check, and CPU interpolation (no timing is asserted)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from pathlib import Path

import pytest
from PIL import Image

from benchmarks import bounds, loopback_server, real_path


def test_each_served_image_is_a_valid_png_of_its_own_with_a_known_digest() -> None:
    prepared = loopback_server.PreparedImage(loopback_server.photo_png(64, seed=1))
    seen = set()
    for token in ("#r1", "#r22"):
        parts, digest = prepared.answer(token, loopback_server.IMAGE_USAGE)
        body = json.loads(b"".join(parts))
        data = base64.b64decode(body["data"][0]["b64_json"])
        assert hashlib.sha256(data).hexdigest()[:16] == digest
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            assert image.size == (64, 64) and image.text["bench-request"] == token
        assert body["usage"]["output_tokens"] == 1056
        seen.add(digest)
    assert len(seen) == 2


def test_photo_weight_images_weigh_what_a_photograph_does() -> None:
    assert len(loopback_server.photo_png(1024, seed=0)) > 1_200_000


def test_structured_answers_fit_beamsearchs_scales_and_carry_the_token() -> None:
    h = hashlib.sha256(b"x").digest()
    alignment = loopback_server.structured("judge_alignment", {}, "#r7", h)
    aesthetic = loopback_server.structured("judge_aesthetic", {}, "#r8", h)
    assert 0 <= alignment["score"] <= 100 and alignment["notes"].endswith("#r7")
    assert 0 <= aesthetic["score"] <= 10 and "#r8" in aesthetic["notes"]
    schema = {"type": "object", "properties": {"winner": {"enum": ["first", "second"]},
                                               "n": {"type": "number", "minimum": 0, "maximum": 3}}}
    filled = loopback_server.fill(schema, "#r9", h)
    assert filled["winner"] in ("first", "second") and 0 <= filled["n"] <= 3


def test_draws_depend_on_content_and_repetition_not_on_arrival_order() -> None:
    first, second = loopback_server.State(), loopback_server.State()
    first.reset({"jitter": 0.5})
    second.reset({"jitter": 0.5})
    a = [first.admit("text", "expand a"), first.admit("text", "expand a"), first.admit("text", "expand b")]
    b = [second.admit("text", "expand b"), second.admit("text", "expand a"), second.admit("text", "expand a")]
    assert sorted(x[1] for x in a) == sorted(x[1] for x in b)
    assert a[0][1] != a[1][1]  # identical requests (lanes expanding the same idea) draw differently
    assert all(0.1 <= latency <= 0.3 for _, latency in a)


def log_and_events() -> tuple[list[dict], list[dict]]:
    log = [
        {"id": 1, "token": "#r1", "service": "text", "arrive": 0.0, "latency": 0.2, "sent": 0.21},
        {"id": 2, "token": "#r2", "service": "text", "arrive": 0.0, "latency": 0.3, "sent": 0.31},
        {"id": 3, "token": "#r3", "service": "text", "arrive": 0.31, "latency": 0.1, "sent": 0.42},
        {"id": 4, "token": "#r4", "service": "image", "arrive": 0.42, "latency": 1.0, "sent": 1.43, "digest": "d4"},
        {"id": 5, "token": "#r5", "service": "vision", "arrive": 1.53, "latency": 0.3, "sent": 1.84},
        {"id": 6, "token": "#r6", "service": "vision", "arrive": 1.50, "latency": 0.4, "sent": 1.91},
    ]
    events = [
        {"type": "run_started"},
        {"type": "step", "key": "i0/c00/expand_what", "service": "text", "result": {"text": "A boat. #r1"}},
        {"type": "step", "key": "i0/c00/expand_how", "service": "text", "result": {"text": "Soft light. #r2"}},
        {"type": "step", "key": "i0/c00/combine", "service": "text", "result": {"text": "A boat, soft. #r3"}},
        {"type": "step", "key": "i0/c00/image", "service": "image", "result": {"path": "images/i0c00.png", "sha256": "d4"}},
        {"type": "step", "key": "i0/c00/judge_alignment", "service": "vision", "result": {"score": 80, "notes": "ok #r5"}},
        {"type": "step", "key": "i0/c00/judge_aesthetic", "service": "vision", "result": {"score": 7, "notes": "#r6"}},
        {"type": "step", "key": "i0/c01/expand_what", "service": "text", "result": {"text": "no token here"}},
        {"type": "candidate", "id": "i0c00", "parent": None},
    ]
    return log, events


def test_the_join_gives_each_step_the_latency_the_server_applied() -> None:
    log, events = log_and_events()
    joined, requests, unmatched = real_path.join(events, log)
    assert unmatched == 1  # the step whose answer carries no token
    assert requests["i0/c00/image"]["id"] == 4 and requests["i0/c00/judge_aesthetic"]["id"] == 6
    chains = {(c.iteration, c.lane): c for c in bounds.lane_chains(joined)}
    assert chains[(0, "c00")].total == pytest.approx(0.3 + 0.1 + 1.0 + 0.4)
    assert real_path.image_to_judge_gaps(requests) == [pytest.approx(1.50 - 1.43)]


def test_the_rate_check_counts_arrivals_over_the_configured_window() -> None:
    run = {"settings": {"limits": {"window_s": 10.0, "image": {"rpm": 12, "concurrency": 4}}},
           "image_arrivals": [0.0, 0.1, 5.0, 10.2], "chains": [bounds.LaneChain(0, "c00", 0.0, 1.0)],
           "bound": 1.0, "ratio": 1.0, "wall": 2.0}
    check = real_path.rate_check(run)  # 2 starts per 10 s
    assert not check["rate_respected"] and check["max_in_window"] == 3
    run["image_arrivals"] = [0.0, 0.1, 10.2, 10.3]
    assert real_path.rate_check(run)["rate_respected"]
    unlimited = {**run, "settings": {"limits": {"window_s": 1.0, "image": {"rpm": None, "concurrency": 256}}}}
    assert real_path.rate_check(unlimited)["rate_respected"]


def test_cpu_is_interpolated_between_samples() -> None:
    child = real_path.Child(started=0.0, exited=4.0, returncode=0, cpu=2.0, samples=[(1.0, 0.5), (3.0, 1.5)],
                            run_dir=Path("."))
    assert child.cpu_at(2.0) == pytest.approx(1.0)
    assert child.cpu_at(0.5) == pytest.approx(0.25)
    assert child.cpu_at(3.5) == pytest.approx(1.75)
    assert child.cpu_at(9.0) == 2.0
