"""The offline parts of the llama.cpp interop check (benchmarks/llamacpp_*.py) and configs/local.yaml.

The check itself needs the real server and a 290 MB download, so it is not run here; what it reads the
server's behaviour with is: the recording proxy (over real HTTP, in front of the loopback fake server)
must see each answer's finish_reason and usage, whether an Authorization header was sent, and a client
that hangs up (a timeout); the analysis must count what the run did.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from beamsearch.precedence import load_yaml, validate
from benchmarks import llamacpp_checks as checks
from benchmarks.llamacpp_proxy import RecordingProxy
from benchmarks.llamacpp_server import http_json

sys.path.insert(0, str(Path(__file__).parent))

from fake_openai_server import FakeConfig, FakeOpenAI  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CHAT = {"model": "m", "messages": [{"role": "user", "content": "a lighthouse"}], "max_completion_tokens": 50}


def _records(proxy: RecordingProxy, count: int) -> list[dict]:
    """The proxy writes a record after the answer has gone out: wait briefly for it."""
    deadline = time.monotonic() + 5
    while len(proxy.records) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return proxy.records


def test_proxy_records_what_the_server_answered(tmp_path: Path) -> None:
    with FakeOpenAI() as fake, RecordingProxy(fake.port, tmp_path / "proxy.jsonl") as proxy:
        status, body, _ = http_json("POST", proxy.url + "/v1/chat/completions", CHAT,
                                    headers={"Authorization": "Bearer secret-value"})
        assert status == 200 and body["choices"][0]["message"]["content"]
        http_json("POST", proxy.url + "/v1/chat/completions", CHAT)
        first, second = _records(proxy, 2)
    assert first["status"] == 200 and first["finish_reason"] == "stop" and first["max_tokens"] == 50
    assert first["completion_tokens"] == body["usage"]["completion_tokens"]
    assert first["authorization"] is True and second["authorization"] is False
    assert "secret-value" not in (tmp_path / "proxy.jsonl").read_text()  # presence only, never the value
    assert len((tmp_path / "proxy.jsonl").read_text().splitlines()) == 2


def test_proxy_sees_a_client_that_gives_up(tmp_path: Path) -> None:
    with FakeOpenAI(FakeConfig(timeout_sleep=1.5)) as fake, \
            RecordingProxy(fake.port, tmp_path / "proxy.jsonl") as proxy:
        fake.queue_fault("text", "timeout")
        with pytest.raises(TimeoutError):
            http_json("POST", proxy.url + "/v1/chat/completions", CHAT, timeout=0.3)
        (record,) = _records(proxy, 1)
    assert record.get("client_gone") is True and "status" not in record
    assert record["seconds"] < 1.4  # it hung up on the server as soon as the client left, not at the answer


def test_proxy_passes_refusals_through_and_summarizes_them(tmp_path: Path) -> None:
    with FakeOpenAI() as fake, RecordingProxy(fake.port, tmp_path / "proxy.jsonl") as proxy:
        fake.queue_fault("text", "400")
        status, body, _ = http_json("POST", proxy.url + "/v1/chat/completions", CHAT)
        records = _records(proxy, 1)
    assert status == 400 and "size" in json.dumps(body)
    summary = checks.analyse_proxy(records)
    assert summary["status_counts"] == {"400": 1} and summary["length_cutoffs"] == 0
    assert any("Invalid value" in error for error in summary["server_errors"])


def test_proxy_summary_counts_cutoffs_hangups_and_speed() -> None:
    records = [
        {"path": "/v1/chat/completions", "status": 200, "finish_reason": "length", "completion_tokens": 100,
         "predicted_ms": 2000, "max_tokens": 1200, "authorization": True, "seconds": 2.5},
        {"path": "/v1/chat/completions", "status": 200, "finish_reason": "stop", "completion_tokens": 50,
         "predicted_ms": 1000, "max_tokens": 1200, "schema": True, "seconds": 1.5},
        {"path": "/v1/chat/completions", "client_gone": True, "max_tokens": 1200, "seconds": 60.0},
        {"path": "/v1/models", "status": 200},
    ]
    summary = checks.analyse_proxy(records)
    assert summary["chat_requests"] == 3 and summary["length_cutoffs"] == 1 and summary["client_hung_up"] == 1
    assert summary["tokens_per_second"] == 50.0 and summary["schema_requests"] == 1
    assert summary["authorization_sent"] == 1 and summary["longest_request_s"] == 60.0


def test_run_log_analysis_counts_steps_per_task_and_failures() -> None:
    events = [
        {"type": "step", "key": "i0/c00/expand_what", "service": "text", "result": {"text": "x" * 500}},
        {"type": "step", "key": "i0/c01/expand_what", "service": "text", "result": {"text": "x" * 20}, "attempts": 3,
         "elapsed": 42.5},
        {"type": "step", "key": "i0/c00/judge_alignment.s1", "service": "vision", "result": {"score": 5}},
        {"type": "step_failed", "key": "i0/c00/combine", "service": "text", "error": "400: too long"},
        {"type": "lane_failed", "id": "i0c00", "iteration": 0, "error": "400: too long"},
        {"type": "run_finished", "status": "failed", "reason": "Only 0 of 2"},
    ]
    found = checks.analyse_run_log(events)
    assert found["steps_per_task"] == {"text:expand_what": 2, "vision:judge_alignment": 1}
    assert found["longest_text_answer_chars"] == {"expand_what": 500}
    assert found["steps_needing_retries"] == {"expand_what": 1} and found["longest_elapsed_s"] == {"expand_what": 42.5}
    assert found["failed_steps"] == [{"key": "i0/c00/combine", "error": "400: too long"}]
    assert len(found["failed_lanes"]) == 1 and found["status"] == "failed"


def test_stream_analysis_counts_timeouts() -> None:
    lines = [{"type": "attempt_failed", "error": "no whole answer within 60 s"},
             {"type": "attempt_failed", "error": "the answer does not fit its schema"},
             {"type": "result", "status": "failed", "reason": "r", "run_dir": "/x"}]
    found = checks.analyse_stream(lines)
    assert found["attempt_failures"] == 2 and found["timeouts"] == 1 and found["result_status"] == "failed"


def test_local_config_is_valid_and_local() -> None:
    settings = validate(load_yaml(ROOT / "configs" / "local.yaml"))
    for role in ("text", "vision"):
        assert settings.role_provider(role) == "openai"
        assert getattr(settings, role).base_url == "http://127.0.0.1:8080/v1"
        assert getattr(settings.limits, role).concurrency == 1
    assert settings.role_provider("image") == "sim"
    assert settings.text.api_key_env == "none" and settings.vision.api_key_env == "none"  # keyless


def test_the_interop_run_starts_from_a_given_config_pointed_at_the_server(tmp_path: Path) -> None:
    from benchmarks.llamacpp_interop import answers_within_length, parse_args, run_config

    args = parse_args(["--config", str(ROOT / "configs" / "local.yaml"), "--out", str(tmp_path)])
    config = run_config(args, "http://127.0.0.1:5555/v1", "the-model", None)
    assert config["text"]["base_url"] == "http://127.0.0.1:5555/v1" and config["text"]["model"] == "the-model"
    assert config["text"]["max_output_tokens"]["expand"] == 160 and config["text"]["api_key_env"] == "none"
    assert config["vision"] == {"provider": "sim"} and config["limits"] == {"text": {"concurrency": 1, "rpm": None}}
    validate(config)
    plain = run_config(parse_args(["--out", str(tmp_path)]), "http://127.0.0.1:5555/v1", "m", None)
    assert "api_key_env" not in plain["text"] and "limits" not in plain  # beamsearch's defaults
    assert answers_within_length({"longest_text_answer_words": {"expand_what": 80, "combine": 150}})["passed"]
    assert not answers_within_length({"longest_text_answer_words": {"expand_how": 51}})["passed"]
