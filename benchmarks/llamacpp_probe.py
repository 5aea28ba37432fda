"""Probe a real llama.cpp server for what issue 17's fixes rely on; write a raw transcript.

    .venv/bin/python benchmarks/llamacpp_interop.py --probe    # probes, then the interop run

What it asks: /slots, /props, /metrics (how many requests the server decodes at once); three requests at
once (does it queue or refuse?); each JSON-schema keyword beamsearch could send, with and without it, a
few samples each (which keywords are enforced, which refused and how); an unknown model name; a context
overflow; the length limit; an image generation request; and whether an Authorization header is needed
(also on a second server started with an API key). Every request and answer goes into the transcript as
sent and received (answers shortened), so what the report says can be checked against it.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.llamacpp_server import LlamaServer, http_json

SAMPLES = 4
CHAT = "/v1/chat/completions"


class Transcript:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.write_text("")

    def write(self, text: str) -> None:
        with self.path.open("a", encoding="utf-8") as out:
            out.write(text.rstrip("\n") + "\n")

    def exchange(self, title: str, method: str, url: str, body: Any = None, headers: dict[str, str] | None = None,
                 limit: int = 1500) -> tuple[int, Any]:
        """One request and its raw answer, in the transcript."""
        status, answer, seconds = http_json(method, url, body, headers, timeout=300)
        shown = json.dumps(answer) if not isinstance(answer, str) else answer
        self.write(f"\n### {title}\n> {method} {url} {json.dumps(headers) if headers else ''}".rstrip())
        if body is not None:
            self.write("> " + json.dumps(body)[:limit])
        self.write(f"< {status} ({seconds:.2f} s)\n< {shown[:limit]}{' ...' if len(shown) > limit else ''}")
        return status, answer


def chat(model: str, prompt: str, max_tokens: int, schema: dict[str, Any] | None = None, **extra: Any) -> dict:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": prompt}],
                            "max_completion_tokens": max_tokens, **extra}
    if schema is not None:
        body["response_format"] = {"type": "json_schema",
                                   "json_schema": {"name": "probe", "schema": schema, "strict": True}}
    return body


def content_of(answer: Any) -> str | None:
    if not isinstance(answer, dict):
        return None
    return ((answer.get("choices") or [{}])[0].get("message") or {}).get("content")


def obj(prop: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": {"v": prop}, "required": ["v"], "additionalProperties": False}


ARRAY = {"type": "array", "items": {"type": "string", "maxLength": 12}}
SHORT = {"type": "array", "items": {"type": "string", "maxLength": 8}}
# keyword -> (prompt, schema without, schema with, measure of the answer's "v", rule it must meet)
KEYWORDS: dict[str, tuple[str, dict, dict, Any, Any]] = {
    # a lower bound alone cannot end the answer of a model that never stops: each is paired with an upper one
    "minItems (with maxItems 3)": ("Reply with an empty list.", obj({**SHORT, "maxItems": 3}),
                                   obj({**SHORT, "minItems": 2, "maxItems": 3}), len, lambda n: n >= 2),
    "maxItems": ("List twenty colours.", obj(ARRAY), obj({**ARRAY, "maxItems": 2}), len, lambda n: n <= 2),
    "minLength (with maxLength 60)": ("Say yes.", obj({"type": "string", "maxLength": 60}),
                                      obj({"type": "string", "minLength": 40, "maxLength": 60}), len,
                                      lambda n: n >= 40),
    "maxLength": ("Describe a storm at length.", obj({"type": "string"}), obj({"type": "string", "maxLength": 10}),
                  len, lambda n: n <= 10),
    "integer minimum/maximum": ("Give a number above 1000.", obj({"type": "integer"}),
                                obj({"type": "integer", "minimum": 1, "maximum": 3}), float, lambda v: 1 <= v <= 3),
    "number minimum/maximum": ("Give a number above 1000.", obj({"type": "number"}),
                               obj({"type": "number", "minimum": 0, "maximum": 10}), float, lambda v: 0 <= v <= 10),
    "number exclusiveMinimum 0 (checklist weight)": (
        "Give the number 0.", obj({"type": "number"}), obj({"type": "number", "exclusiveMinimum": 0, "maximum": 10}),
        float, lambda v: 0 < v <= 10),
    "integer exclusiveMinimum/exclusiveMaximum": (
        "Give the number 0.", obj({"type": "integer"}),
        obj({"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 4}), float, lambda v: 0 < v < 4),
}


def sample(transcript: Transcript, base: str, model: str, title: str, prompt: str, schema: dict,
           measure: Any, rule: Any) -> str:
    """SAMPLES answers to one schema; a line saying what they measured and whether each met the rule."""
    seen = []
    for i in range(SAMPLES):
        status, answer = transcript.exchange(f"{title} sample {i + 1}", "POST", base + CHAT,
                                             chat(model, prompt, 160, schema, temperature=1.0), limit=700)
        if status != 200:
            return f"refused: {status} {json.dumps(answer)[:300]}"
        try:
            value = measure(json.loads(content_of(answer) or "")["v"])
            seen.append(f"{value:g}" + ("" if rule(value) else "(!)"))
        except (ValueError, KeyError, TypeError):
            seen.append("unparsable")
    return "200; measured " + ", ".join(seen) + "  ((!) = breaks the rule)"


def probe_keywords(transcript: Transcript, base: str, model: str) -> list[str]:
    findings = []
    for keyword, (prompt, without, with_keyword, measure, rule) in KEYWORDS.items():
        plain = sample(transcript, base, model, f"{keyword}: without", prompt, without, measure, rule)
        bound = sample(transcript, base, model, f"{keyword}: with", prompt, with_keyword, measure, rule)
        findings.append(f"{keyword}: without the keyword {plain}; with it {bound}")
    return findings


def probe_parallelism(transcript: Transcript, base: str, model: str) -> str:
    """Three requests at once against the server's slots; /slots and /metrics sampled while they run."""
    finished: list[tuple[int, float, int]] = []
    started = time.monotonic()

    def one(i: int) -> None:
        status, _, _ = http_json("POST", base + CHAT, chat(model, f"Count to {i + 20}.", 64), timeout=300)
        finished.append((i, time.monotonic() - started, status))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    transcript.exchange("/slots while 3 requests run", "GET", base + "/slots", limit=600)
    status, metrics, _ = http_json("GET", base + "/metrics")
    wanted = [line for line in str(metrics).splitlines() if "requests_processing" in line or "deferred" in line]
    transcript.write("\n### /metrics while 3 requests run (requests lines)\n< " + "\n< ".join(wanted))
    for thread in threads:
        thread.join()
    times = ", ".join(f"#{i} {status} at {t:.1f} s" for i, t, status in sorted(finished, key=lambda f: f[1]))
    transcript.write(f"\n### 3 requests of 64 tokens sent at once\n< finished: {times}")
    return f"3 requests at once, 64 tokens each: {times}"


def probe_other_servers(transcript: Transcript, venv: Path, model_path: Path, model: str, log: Path,
                        threads: int | None) -> None:
    """A server without the optional endpoints (what /slots and /props say then), and one started with an
    API key (what it answers without one and with a wrong one)."""
    with LlamaServer(venv, model_path, log, threads=threads, endpoints=False) as plain:
        transcript.write(f"\n## A second server started without --slots, --metrics, --props ({plain.url})")
        for endpoint in ("/slots", "/metrics", "/props"):
            transcript.exchange(f"GET {endpoint} (endpoint not enabled)", "GET", plain.url + endpoint, limit=400)
    with LlamaServer(venv, model_path, log, api_key="probe-key", threads=threads) as keyed:
        transcript.write(f"\n## A third server started with api_keys=['probe-key'] ({keyed.url})")
        transcript.exchange("keyed server: /v1/models without Authorization", "GET", keyed.url + "/v1/models")
        transcript.exchange("keyed server: chat without Authorization", "POST", keyed.url + CHAT,
                            chat(model, "Hi.", 8))
        transcript.exchange("keyed server: chat with a wrong key", "POST", keyed.url + CHAT, chat(model, "Hi.", 8),
                            {"Authorization": "Bearer wrong"})
        transcript.exchange("keyed server: chat with the key", "POST", keyed.url + CHAT, chat(model, "Hi.", 8),
                            {"Authorization": "Bearer probe-key"})


def probe_limits(transcript: Transcript, base: str, model: str) -> None:
    long_prompt = "storm lighthouse wave " * 900  # about 2700 tokens: more than a 2048-token context
    transcript.exchange("prompt longer than the context", "POST", base + CHAT, chat(model, long_prompt, 64), limit=900)
    medium = "storm lighthouse wave " * 450  # about 1350 tokens: fits, but not with 1200 more
    transcript.exchange("prompt + max_tokens beyond the context", "POST", base + CHAT, chat(model, medium, 1200),
                        limit=900)
    transcript.exchange("the length limit: max_completion_tokens 16", "POST", base + CHAT,
                        chat(model, "Describe a lighthouse.", 16))
    transcript.exchange("an unknown model name", "POST", base + CHAT, chat("no-such-model", "Hi.", 8))
    transcript.exchange("no model name at all", "POST", base + CHAT,
                        {"messages": [{"role": "user", "content": "Hi."}], "max_tokens": 8})
    transcript.exchange("a bogus Authorization header on a keyless server", "POST", base + CHAT,
                        chat(model, "Hi.", 8), {"Authorization": "Bearer anything"})
    transcript.exchange("image generation", "POST", base + "/v1/images/generations",
                        {"model": model, "prompt": "a lighthouse", "n": 1, "size": "256x256"})


def probe_all(server: LlamaServer, venv: Path, model_path: Path, model: str, path: Path) -> None:
    """Every probe, in one transcript; the findings of the sampled ones summed up at its end."""
    transcript = Transcript(path)
    base = server.url
    transcript.write(f"# llama.cpp server probe ({base}, model {model}, n_ctx {server.n_ctx}, "
                     f"n_parallel {server.n_parallel}, threads {server.threads})")
    for endpoint in ("/health", "/v1/models", "/props", "/slots"):
        transcript.exchange(f"GET {endpoint}", "GET", base + endpoint, limit=4000)
    status, metrics, _ = http_json("GET", base + "/metrics")
    transcript.write(f"\n### GET /metrics\n< {status}\n< {str(metrics)[:2500]}")
    probe_limits(transcript, base, model)
    findings = [probe_parallelism(transcript, base, model)]
    findings += probe_keywords(transcript, base, model)
    probe_other_servers(transcript, venv, model_path, model, path.with_suffix(".servers.log"), server.threads)
    transcript.write("\n## Findings of the sampled probes\n" + "\n".join(f"- {line}" for line in findings))
