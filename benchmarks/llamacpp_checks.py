"""What the interop check asks of a llama.cpp server, and how it reads a beamsearch run afterwards.

The direct checks send what beamsearch's OpenAI provider sends (the same parameters, beamsearch's own
checklist prompt and schema) and judge the answer with beamsearch's own validation, so "accepted" means
what it would mean inside a run. The run is read from three places that do not depend on one another:
the `--json` event stream (attempt failures, the result), the run folder's `events.jsonl` (steps per
task, failed steps and lanes) and the proxy's records (what the server actually answered).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.llamacpp_server import http_json


def check(name: str, passed: bool, detail: str, **data: Any) -> dict[str, Any]:
    return {"name": name, "passed": bool(passed), "detail": detail, **data}


def check_models(base: str) -> tuple[dict[str, Any], str | None]:
    """/v1/models must name the loaded model: beamsearch sends that name as `text.model`."""
    status, body, _ = http_json("GET", base + "/v1/models")
    ids = [m.get("id") for m in body.get("data", [])] if isinstance(body, dict) else []
    model = ids[0] if ids else None
    return check("/v1/models", status == 200 and model is not None, f"status {status}, models {ids}"), model


def check_completion(base: str, model: str) -> dict[str, Any]:
    """A plain chat completion, as expand/combine/refine send it."""
    body = {"model": model, "max_completion_tokens": 64, "temperature": 0.9,
            "messages": [{"role": "system", "content": "You write short image descriptions."},
                         {"role": "user", "content": "Describe a lighthouse in a storm in one sentence."}]}
    status, answer, seconds = http_json("POST", base + "/v1/chat/completions", body)
    choice = (answer.get("choices") or [{}])[0] if isinstance(answer, dict) else {}
    content = (choice.get("message") or {}).get("content") or ""
    return check("plain completion", status == 200 and bool(content.strip()),
                 f"status {status}, finish_reason {choice.get('finish_reason')!r}, {len(content)} chars in "
                 f"{seconds:.1f} s", finish_reason=choice.get("finish_reason"),
                 usage=answer.get("usage") if isinstance(answer, dict) else None)


def check_json_schema(base: str, model: str, idea: str) -> dict[str, Any]:
    """beamsearch's checklist request with its strict schema, judged by beamsearch's own validation."""
    from beamsearch.errors import InvalidAnswer
    from beamsearch.judging import validate_checklist
    from beamsearch.lengths import max_tokens
    from beamsearch.schemas import ChecklistAnswer, keywords_of, parse_answer, strict_json_schema
    from beamsearch.templates import Templates

    system, user = Templates().render("checklist", {"idea": idea})
    schema = strict_json_schema(ChecklistAnswer)
    body = {"model": model, "max_completion_tokens": max_tokens(None, "checklist"), "temperature": 0.9,
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
            "response_format": {"type": "json_schema",
                                "json_schema": {"name": "checklist", "schema": schema, "strict": True}}}
    status, answer, seconds = http_json("POST", base + "/v1/chat/completions", body, timeout=300)
    if status != 200 or not isinstance(answer, dict):
        return check("json_schema answer", False, f"status {status}: {str(answer)[:300]}")
    choice = (answer.get("choices") or [{}])[0]
    text = (choice.get("message") or {}).get("content") or ""
    try:
        json.loads(text)
        parsed = True
    except ValueError:
        parsed = False
    try:
        validate_checklist(parse_answer(text, ChecklistAnswer).model_dump()["questions"])
        verdict, valid = "accepted by beamsearch's validation", True
    except InvalidAnswer as exc:
        verdict, valid = f"refused by beamsearch's validation: {exc}", False
    return check("json_schema answer", status == 200 and parsed and valid,
                 f"status {status}, JSON {'parses' if parsed else 'does not parse'}, schema bounds "
                 f"{bounds_kept(text) or 'not checked'}, {verdict} (finish_reason {choice.get('finish_reason')!r}, "
                 f"{seconds:.1f} s)", schema_keywords=sorted(keywords_of(schema)), answer=text[:600])


def bounds_kept(text: str) -> str | None:
    """Whether a checklist answer keeps the bounds its schema sends (1-20 questions, integer weights 1-3,
    strings within their maxLength): what a grammar-constrained server enforces. None if it is no JSON."""
    try:
        questions = json.loads(text).get("questions")
    except (ValueError, AttributeError):
        return None
    if not isinstance(questions, list):
        return "no list of questions"
    broken = [f"weight {q.get('weight')!r}" for q in questions if isinstance(q, dict)
              and not (isinstance(q.get("weight"), int) and 1 <= q["weight"] <= 3)]
    broken += [f"question of {len(q['question'])} chars" for q in questions if isinstance(q, dict)
               and len(str(q.get("question", ""))) > 160]
    if not 1 <= len(questions) <= 20:
        broken.append(f"{len(questions)} questions")
    return "; ".join(broken) if broken else "kept"


def task_of(key: str) -> str:
    """`i0/c01/expand_what` -> expand_what; `i1/p-i0c00/critique` -> critique; samples `.s1` folded in."""
    return key.rsplit("/", 1)[-1].split(".s", 1)[0]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def analyse_run_log(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Steps per task and service, failed steps and lanes, the longest free-text answers, the end."""
    steps = Counter(f"{e.get('service')}:{task_of(e['key'])}" for e in events if e.get("type") == "step")
    failed = [{"key": e["key"], "error": e.get("error")} for e in events if e.get("type") == "step_failed"]
    lanes = [{"id": e.get("id"), "error": e.get("error")} for e in events if e.get("type") == "lane_failed"]
    longest: dict[str, int] = {}
    words: dict[str, int] = {}
    trimmed = 0
    for e in events:
        if e.get("type") == "step" and e.get("service") == "text":
            result = e.get("result") or {}
            text = result.get("text") if isinstance(result, dict) else None
            if isinstance(text, str):
                task = task_of(e["key"])
                longest[task] = max(longest.get(task, 0), len(text))
                words[task] = max(words.get(task, 0), len(text.split()))
                trimmed += "trimmed" in (e.get("meta") or {})
    elapsed: dict[str, float] = {}
    for e in events:
        if e.get("type") == "step" and isinstance(e.get("elapsed"), int | float):
            task = task_of(e["key"])
            elapsed[task] = max(elapsed.get(task, 0.0), float(e["elapsed"]))
    finished = next((e for e in reversed(events) if e.get("type") == "run_finished"), {})
    attempts = Counter(task_of(e["key"]) for e in events if e.get("type") == "step" and e.get("attempts", 1) > 1)
    return {"steps_per_task": dict(sorted(steps.items())), "failed_steps": failed, "failed_lanes": lanes,
            "longest_text_answer_chars": longest, "steps_needing_retries": dict(attempts),
            "longest_elapsed_s": elapsed, "longest_text_answer_words": words, "trimmed_answers": trimmed,
            "fallbacks": [e.get("reason") for e in events if e.get("type") == "alignment_fallback"],
            "candidates_scored": sum(1 for e in events if e.get("type") == "candidate"),
            "status": finished.get("status"), "reason": finished.get("reason")}


def analyse_stream(lines: list[dict[str, Any]]) -> dict[str, Any]:
    """Attempt failures (grouped by message), warnings and the result line of `run --json`."""
    failures = [e for e in lines if e.get("type") == "attempt_failed"]
    messages = Counter(str(e.get("error"))[:160] for e in failures)
    result = next((e for e in reversed(lines) if e.get("type") == "result"), {})
    return {"attempt_failures": len(failures), "attempt_failure_messages": dict(messages.most_common(8)),
            "timeouts": sum(1 for e in failures if "within" in str(e.get("error"))),
            "warnings": [e.get("message") for e in lines if e.get("type") == "warning"],
            "result_status": result.get("status"), "result_reason": result.get("reason"),
            "run_dir": result.get("run_dir")}


def analyse_proxy(records: list[dict[str, Any]]) -> dict[str, Any]:
    """What the server saw and answered: finish reasons, refusals, hang-ups, tokens per second."""
    chats = [r for r in records if r.get("path", "").endswith("/chat/completions")]
    answered = [r for r in chats if r.get("status") == 200]
    generated = sum(r.get("completion_tokens") or 0 for r in answered)
    generating_ms = sum(r.get("predicted_ms") or 0 for r in answered)
    errors = Counter(f"{r.get('status')}: {r.get('error')}"[:300] for r in chats if (r.get("status") or 0) >= 400)
    return {"chat_requests": len(chats), "status_counts": dict(Counter(str(r.get("status")) for r in chats)),
            "finish_reasons": dict(Counter(str(r.get("finish_reason")) for r in answered)),
            "length_cutoffs": sum(1 for r in answered if r.get("finish_reason") == "length"),
            "client_hung_up": sum(1 for r in chats if r.get("client_gone")),
            "max_tokens_sent": sorted({r.get("max_tokens") for r in chats if r.get("max_tokens") is not None}),
            "schema_requests": sum(1 for r in chats if r.get("schema")),
            "authorization_sent": sum(1 for r in chats if r.get("authorization")),
            "server_errors": dict(errors.most_common(6)),
            "tokens_generated": generated,
            "tokens_per_second": round(generated / (generating_ms / 1000), 1) if generating_ms else None,
            "longest_request_s": max((r.get("seconds") or 0 for r in chats), default=0)}
