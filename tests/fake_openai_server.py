"""A small OpenAI-compatible HTTP server on 127.0.0.1 for tests: real sockets, real JSON, injected faults.

It serves `POST /v1/chat/completions` (text, and vision when a message carries `image_url` parts, whose
data URLs it decodes with Pillow to check they are real images) and `POST /v1/images/generations` (real
PNG/JPEG/WebP bytes made with Pillow, as base64 or as a URL served from `GET /files/...`, with a usage
block). Answers to the structured tasks (judge_alignment, judge_aesthetic, critique, and the judging
methods' checklist, judge_checklist, judge_pairwise) fit their schemas; other tasks get plain text made
from the request.

Faults are configured on `FakeConfig`: every `fail_every`-th request (in arrival order, across services)
gets the next fault of `fault_cycle`; `queue_fault` forces faults on the next requests of a service.
`rate_limit` makes it a rate-limited service as OpenAI's is (a token bucket per service, refilled at
`rate_limit` per minute, each answer carrying `x-ratelimit-*` headers, a 429 when it is empty), and
`slots` a local server with that many slots (llama.cpp: requests beyond them wait in the server's queue,
and `GET /slots` and `GET /props` say how many there are).
Per service it counts requests, faults and answers, and records the start time of every request and the
largest number in flight at once, so tests can check the client's concurrency cap and request rate from
the server's side. It runs in a thread (`ThreadingHTTPServer`), so it works under any event loop.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import threading
import time
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from PIL import Image

FAULTS = ("429", "500", "503", "malformed", "schema", "timeout", "401", "404", "400", "quota", "echo_key",
          "length_empty", "length_junk", "length_usable")
# Answers cut off by the length limit (finish_reason "length"), as a model that never stops gives them: with
# no text at all (a reasoning model that spent its tokens thinking), with one run-on sentence and nothing
# usable, or with whole sentences before the cut. Served in place of the answer (structured or not).
LENGTH_TEXT = {
    "length_empty": "",
    "length_junk": "storm lighthouse wave " * 60 + "storm",
    "length_usable": "A red lighthouse stands on a black cliff. Waves break white below it. " + "The sea " * 50,
}


@dataclass
class FakeConfig:
    """What the server does; tests change it between (or during) runs."""

    api_key: str | None = None                     # when set, any other bearer token gets a 401
    latency: dict[str, float] = field(default_factory=lambda: {"text": 0.0, "image": 0.0, "vision": 0.0})
    fail_every: int = 0                            # every k-th request fails (0 = never)
    fault_cycle: tuple[str, ...] = ("429", "500", "503", "malformed", "schema")
    retry_after_ms: str | None = "20"              # headers sent with a 429
    retry_after: str | None = "1"
    timeout_sleep: float = 2.0                     # how long a "timeout" fault holds the request
    policy_words: tuple[str, ...] = ()             # image prompts holding one of these are refused
    reject_temperature: bool = False
    reject_max_tokens: bool = False                # "use max_completion_tokens instead"
    reject_max_completion_tokens: bool = False     # an older server that only knows max_tokens
    image_mode: str = "b64"                        # or "url"
    image_format: str = "png"                      # png, jpeg or webp
    image_side: int = 64
    revised_prompt: bool = False
    image_usage: dict[str, int] = field(default_factory=lambda: {"text": 40, "image_out": 1056})
    omit_usage: bool = False                       # answer without a usage block, as some compatible servers do
    headers: dict[str, str] = field(default_factory=dict)  # sent with every answer (e.g. x-ratelimit-*)
    image_padding: int = 0                         # bytes of zeros appended to every picture (an oversized answer)
    image_url_base: str | None = None              # URL answers point here instead of this server (another host)
    files_status: int | None = None                # GET /files/... answers this status instead of the file
    redirect_files_to: str | None = None           # GET /files/... redirects (302) to this base URL
    rate_limit: int | None = None                  # requests per minute per service (token bucket), headers sent
    rate_tokens: float | None = None               # tokens in each bucket at the start (default: full)
    slots: int | None = None                       # requests served at once; the rest queue in the server
    slot_routes: tuple[str, ...] = ("slots", "props")  # which of llama.cpp's GET /slots, /props answer
    refuse_keywords: tuple[str, ...] = ()          # a json_schema using one of these gets a 400 naming it
    # faults for the requests whose system prompt holds a phrase (e.g. {"the WHAT half": ["length_junk"]}),
    # taken in order, one per such request, before any other fault
    prompt_faults: dict[str, list[str]] = field(default_factory=dict)
    reasoning_tokens: int = 0                      # a reasoning model: spends this many tokens thinking first


@dataclass
class ServiceStats:
    requests: int = 0
    answered: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    starts: list[float] = field(default_factory=list)
    faults: Counter[str] = field(default_factory=Counter)


class FakeOpenAI:
    """The server plus what it saw. Use as a context manager, or call start() and stop()."""

    def __init__(self, config: FakeConfig | None = None) -> None:
        self.config = config or FakeConfig()
        self.stats: dict[str, ServiceStats] = defaultdict(ServiceStats)
        self.bodies: list[dict[str, Any]] = []          # every JSON request body (for parameter checks)
        self.authorizations: list[str] = []             # every Authorization header received (where keys went)
        self.authorization_headers: list[str | None] = []  # the same, None when the header was absent
        self.images_checked = 0
        self.files: dict[str, bytes] = {}
        self.gets: list[str] = []                       # every GET path (image downloads)
        self.probes: list[str] = []                     # every GET of /slots or /props (what a local server serves)
        self._forced: dict[str, deque[str]] = defaultdict(deque)
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # service -> (tokens, when last refilled)
        self._slots: threading.Semaphore | None = None
        self._arrivals = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle --------------------------------------------------------------------------------

    def start(self) -> FakeOpenAI:
        owner = self

        class Handler(_Handler):
            server_owner = owner

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # --- fault plan -------------------------------------------------------------------------------

    def queue_fault(self, service: str, *faults: str) -> None:
        """Force these faults, in order, on the next requests of `service`."""
        for fault in faults:
            assert fault in FAULTS, fault
            self._forced[service].append(fault)

    def _choose_fault(self, service: str) -> str | None:
        with self._lock:
            self._arrivals += 1
            number = self._arrivals
            if self._forced[service]:
                return self._forced[service].popleft()
        every = self.config.fail_every
        if every and number % every == 0:
            cycle = self.config.fault_cycle
            return cycle[(number // every - 1) % len(cycle)]
        return None

    def take_token(self, service: str) -> tuple[bool, dict[str, str]]:
        """Whether the service's bucket lets this request through, and the rate-limit headers to send."""
        limit = self.config.rate_limit
        if limit is None:
            return True, {}
        per_second = limit / 60.0
        with self._lock:
            now = time.monotonic()
            start = float(limit if self.config.rate_tokens is None else self.config.rate_tokens)
            tokens, then = self._buckets.get(service, (start, now))
            tokens = min(float(limit), tokens + (now - then) * per_second)
            allowed = tokens >= 1
            tokens -= 1 if allowed else 0
            self._buckets[service] = (tokens, now)
        return allowed, {"x-ratelimit-limit-requests": str(limit), "x-ratelimit-remaining-requests": str(int(tokens)),
                         "x-ratelimit-reset-requests": f"{(limit - tokens) / per_second:.3f}s"}

    def slot_gate(self) -> threading.Semaphore | None:
        """The server's slots (made on first use, so tests may set `slots` after starting it)."""
        with self._lock:
            if self._slots is None and self.config.slots is not None:
                self._slots = threading.Semaphore(self.config.slots)
            return self._slots

    def _prompt_fault(self, body: dict[str, Any]) -> str | None:
        system = " ".join(_text_of(m.get("content")) for m in body.get("messages", []) if m.get("role") == "system")
        with self._lock:
            for phrase, faults in self.config.prompt_faults.items():
                if phrase in system and faults:
                    return faults.pop(0)
        return None

    def total_requests(self) -> int:
        return sum(s.requests for s in self.stats.values())

    def total_faults(self) -> int:
        return sum(sum(s.faults.values()) for s in self.stats.values())

    # --- answers ----------------------------------------------------------------------------------

    def paint(self, prompt: str) -> bytes:
        digest = hashlib.sha256(prompt.encode()).digest()
        side = self.config.image_side
        image = Image.new("RGB", (side, side), tuple(digest[:3]))
        for i in range(4):  # a few rectangles, so images differ in more than colour
            x, y = digest[3 + i] % side, digest[7 + i] % side
            image.paste(tuple(digest[11 + 3 * i: 14 + 3 * i]), (x // 2, y // 2, x // 2 + side // 4, y // 2 + side // 4))
        buffer = io.BytesIO()
        fmt = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}[self.config.image_format]
        image.save(buffer, fmt)
        return buffer.getvalue()


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _image_urls(messages: list[dict[str, Any]]) -> list[str]:
    urls = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and part.get("type") == "image_url":
                    urls.append(part["image_url"]["url"])
    return urls


def _keyword_path(node: Any, keyword: str, path: tuple[str, ...] = ()) -> str | None:
    """Where in a JSON schema `keyword` is used (as a keyword, not a property name), or None."""
    if isinstance(node, list):
        return next((p for item in node if (p := _keyword_path(item, keyword, path)) is not None), None)
    if not isinstance(node, dict):
        return None
    if keyword in node:
        return ", ".join(repr(p) for p in path)
    for key, value in node.items():
        inner = value.items() if key == "properties" and isinstance(value, dict) else [(key, value)]
        for name, child in inner:
            found = _keyword_path(child, keyword, (*path, key, name) if key == "properties" else (*path, key))
            if found is not None:
                return found
    return None


def _plain_answer(system: str, user: str, policy_words: tuple[str, ...]) -> str:
    """Plain text made from the request: the values of its `Label: value` lines; a rephrase drops the
    refused words (a stand-in for an LLM that keeps the intent and avoids the problem)."""
    if "refused" in system.lower():
        match = re.search(r"Refused prompt:\s*(.*)", user)
        prompt = match.group(1) if match else user
        words = [w for w in prompt.split() if w.strip(".,;:!?").lower() not in policy_words]
        return " ".join(words) or "a calm landscape"
    values = [line.split(": ", 1)[1].strip() for line in user.splitlines() if ": " in line]
    text = ("; ".join(v for v in values if v) or " ".join(user.split()))[:300]
    # asked for one of several variants, or for one that differs from versions already taken, it obliges
    draft = re.search(r"draft (\S+) of several", user)
    if draft:  # an expansion at temperature > 0: each lane's draft is its own
        text += f" (draft {draft.group(1)})"
    variant = re.search(r"variant (\d+) of \d+", user)
    if variant:
        text += f" (variant {variant.group(1)})"
    if "taken already" in user:
        text += f" (take {1 + sum(1 for line in user.splitlines() if line.startswith('- '))})"
    return text


def _schema_answer(name: str, schema: dict[str, Any], seed: bytes, user: str = "") -> dict[str, Any]:
    h = hashlib.sha256(seed).digest()
    if name == "checklist":  # judging (issue 7): a small checklist with a dependency
        return {"questions": [
            {"id": "q1", "question": "Is there a lighthouse?", "category": "entity", "element": "lighthouse",
             "depends_on": [], "weight": 3},
            {"id": "q2", "question": "Is the lighthouse red?", "category": "attribute", "element": "red lighthouse",
             "depends_on": ["q1"], "weight": 2},
            {"id": "q3", "question": "Is it night?", "category": "scene", "element": "night", "depends_on": [], "weight": 2},
            {"id": "q4", "question": "Does the image as a whole show the request?", "category": "whole",
             "element": "the whole request", "depends_on": ["q1"], "weight": 1}]}
    if name == "judge_checklist":  # a yes or no for every "id: question" line of the request
        ids = re.findall(r"^(\w+): ", user.split("Questions:", 1)[-1], re.M)
        return {"answers": [{"id": qid, "answer": "yes" if h[i % 32] % 3 else "no"} for i, qid in enumerate(ids)],
                "notes": "Checked."}
    if name == "judge_pairwise":  # prefers the first image two times in three, like a position-biased judge
        return {"winner": "first" if h[0] % 3 else "second", "reason": "It shows the request better."}
    if name == "judge_alignment":
        return {"score": 30 + h[0] % 66, "found": ["the main subject"], "missing": ["a detail"] if h[1] % 2 else [],
                "notes": "Mostly there."}
    if name == "judge_aesthetic":
        return {"score": round(3 + (h[0] % 61) / 10, 1), "weak": ["contrast"] if h[1] % 2 else [], "notes": "Decent."}
    if name == "critique":
        return {"critique": "The picture lacks a clear focal point.", "suggestions": ["add a bright red boat", "use warm light"]}
    answer: dict[str, Any] = {}
    for key, spec in schema.get("properties", {}).items():
        kind = spec.get("type")
        answer[key] = 1.0 if kind in ("number", "integer") else ["x"] if kind == "array" else "x"
    return answer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_owner: FakeOpenAI

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True

    # --- plumbing ---------------------------------------------------------------------------------

    def _send(self, status: int, body: bytes, content_type: str = "application/json",
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        extra = getattr(self, "request_headers", {})
        for name, value in {**self.server_owner.config.headers, **extra, **(headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def _json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(data).encode(), headers=headers)

    def _error(self, status: int, message: str, kind: str, code: str | None = None, param: str | None = None,
               headers: dict[str, str] | None = None) -> None:
        self._json(status, {"error": {"message": message, "type": kind, "code": code, "param": param}}, headers)

    def do_GET(self) -> None:
        owner = self.server_owner
        config = owner.config
        route = self.path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        if route in ("slots", "props") and not self.path.startswith("/files/"):
            with owner._lock:
                owner.probes.append(self.path)
            if config.slots is None or route not in config.slot_routes:
                self._error(501 if route == "slots" else 404, "This server does not support slots.", "not_supported")
            elif route == "slots":  # llama.cpp: one object per slot
                self._json(200, [{"id": i, "id_task": -1, "is_processing": False} for i in range(config.slots)])
            else:
                self._json(200, {"total_slots": config.slots, "model_path": "fake.gguf"})
            return
        with owner._lock:
            owner.gets.append(self.path)
        name = self.path.rsplit("/", 1)[-1]
        if config.redirect_files_to is not None:
            self._send(302, b"", headers={"Location": f"{config.redirect_files_to}/files/{name}"})
            return
        if config.files_status is not None:
            self._error(config.files_status, "the file store is down", "server_error")
            return
        data = owner.files.get(name)
        if data is None:
            self._error(404, "no such file", "not_found")
            return
        self._send(200, data, content_type="application/octet-stream")

    def do_POST(self) -> None:
        owner = self.server_owner
        start = time.monotonic()
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw)
        except ValueError:
            self._error(400, "We could not parse the JSON body of your request.", "invalid_request_error")
            return
        path = self.path.split("?", 1)[0]
        if path.endswith("/images/generations"):
            service = "image"
        elif path.endswith("/chat/completions"):
            service = "vision" if _image_urls(body.get("messages", [])) else "text"
        else:
            self._error(404, f"Invalid URL (POST {path})", "invalid_request_error")
            return
        stats = owner.stats[service]
        with owner._lock:
            stats.requests += 1
            stats.starts.append(start)
            stats.in_flight += 1
            stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
            owner.bodies.append(body)
        try:
            self._serve(service, body, stats)
        finally:
            with owner._lock:
                stats.in_flight -= 1

    def _serve(self, service: str, body: dict[str, Any], stats: ServiceStats) -> None:
        owner, config = self.server_owner, self.server_owner.config
        with owner._lock:
            owner.authorizations.append(self.headers.get("Authorization") or "")
            owner.authorization_headers.append(self.headers.get("Authorization"))
        if config.api_key is not None and self.headers.get("Authorization") != f"Bearer {config.api_key}":
            given = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
            masked = given[:3] + "*" * 8 + given[-4:] if len(given) > 8 else "***"
            stats.faults["401"] += 1
            self._error(401, f"Incorrect API key provided: {masked}. You can find your API key in your dashboard.",
                        "invalid_request_error", code="invalid_api_key")
            return
        refusal = self._parameter_refusal(body)
        if refusal is not None:
            stats.faults["param"] += 1
            self._error(400, refusal[0], "invalid_request_error", code=refusal[2], param=refusal[1])
            return
        allowed, self.request_headers = owner.take_token(service)
        if not allowed:
            stats.faults["ratelimit"] += 1
            self._error(429, "Rate limit reached for requests. Please try again later.", "requests",
                        code="rate_limit_exceeded")
            return
        fault = owner._prompt_fault(body) or owner._choose_fault(service)
        if fault is not None:
            stats.faults[fault] += 1
            if self._inject(fault, service):
                return
        slots = owner.slot_gate()
        if slots is not None:
            slots.acquire()  # a one-slot server queues what it cannot serve yet
        try:
            delay = config.latency.get(service, 0.0)
            if delay:
                time.sleep(delay)
            if service == "image":
                self._image(body, stats, broken=fault == "schema")
            else:
                self._chat(service, body, stats, fault)
        finally:
            if slots is not None:
                slots.release()

    def _parameter_refusal(self, body: dict[str, Any]) -> tuple[str, str | None, str | None] | None:
        config = self.server_owner.config
        if config.reject_temperature and "temperature" in body:
            return (f"Unsupported value: 'temperature' does not support {body['temperature']} with this model. "
                    "Only the default (1) value is supported.", "temperature", "unsupported_value")
        if config.reject_max_tokens and "max_tokens" in body:
            return ("Unsupported parameter: 'max_tokens' is not supported with this model. "
                    "Use 'max_completion_tokens' instead.", "max_tokens", "unsupported_parameter")
        if config.reject_max_completion_tokens and "max_completion_tokens" in body:
            return ("Unrecognized request argument supplied: max_completion_tokens", None, None)
        response_format = body.get("response_format")
        spec = (response_format.get("json_schema") or {}) if isinstance(response_format, dict) else {}
        for keyword in config.refuse_keywords:  # worded as OpenAI's strict structured outputs word it
            where = _keyword_path(spec.get("schema"), keyword)
            if where is not None:
                return (f"Invalid schema for response_format '{spec.get('name')}': In context=({where}), "
                        f"'{keyword}' is not permitted.", "response_format", "invalid_json_schema")
        return None

    def _inject(self, fault: str, service: str) -> bool:
        """Send the fault's answer; False when the fault is in the answer itself (served later)."""
        config = self.server_owner.config
        if fault == "429":
            headers = {}
            if config.retry_after_ms is not None:
                headers["retry-after-ms"] = config.retry_after_ms
            if config.retry_after is not None:
                headers["retry-after"] = config.retry_after
            self._error(429, "Rate limit reached for requests. Please try again later.", "requests",
                        code="rate_limit_exceeded", headers=headers)
        elif fault == "quota":
            self._error(429, "You exceeded your current quota, please check your plan and billing details.",
                        "insufficient_quota", code="insufficient_quota")
        elif fault in ("500", "503"):
            self._error(int(fault), "The server had an error while processing your request.", "server_error")
        elif fault == "400":
            self._error(400, "Invalid value for 'size'.", "invalid_request_error", param="size")
        elif fault == "404":
            self._error(404, "The model 'nope' does not exist or you do not have access to it.",
                        "invalid_request_error", code="model_not_found")
        elif fault == "401":
            self._error(401, "Incorrect API key provided.", "invalid_request_error", code="invalid_api_key")
        elif fault == "malformed":
            self._send(200, b'{"id": "chatcmpl-broken", "object": "chat.completion", "choices": [{"index": 0, "mess')
        elif fault == "echo_key":  # a 500 whose message repeats the caller's key, straddling a 240-character cut
            given = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
            self._error(500, "The server had an error while processing your request. " + "detail " * 24
                        + f"(credential {given} rejected by the upstream cache).", "server_error")
        elif fault == "timeout":
            time.sleep(config.timeout_sleep)
            self._error(503, "too late", "server_error")
        elif fault == "schema" or fault in LENGTH_TEXT:
            return False  # served by the endpoint as an answer that breaks its schema (or is no image), or is cut
        return True

    # --- endpoints --------------------------------------------------------------------------------

    def _chat(self, service: str, body: dict[str, Any], stats: ServiceStats, fault: str | None) -> None:
        owner = self.server_owner
        messages = body.get("messages", [])
        system = "\n".join(_text_of(m.get("content")) for m in messages if m.get("role") == "system")
        user = "\n".join(_text_of(m.get("content")) for m in messages if m.get("role") == "user")
        seed = user.encode()
        for url in _image_urls(messages):
            match = re.match(r"data:image/(png|jpeg|webp);base64,(.*)$", url, re.S)
            if match is None:
                self._error(400, "Invalid image URL: expected a base64 data URL.", "invalid_request_error")
                return
            data = base64.b64decode(match.group(2))
            try:
                with Image.open(io.BytesIO(data)) as image:
                    image.load()
                    if image.format.lower() != match.group(1):
                        raise ValueError("format does not match the data URL")
            except Exception:
                self._error(400, "Invalid image data.", "invalid_request_error")
                return
            with owner._lock:
                owner.images_checked += 1
            seed += data
        response_format = body.get("response_format") or {}
        finish, reasoning = "stop", 0
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        if owner.config.reasoning_tokens and limit is not None and limit <= owner.config.reasoning_tokens:
            fault, reasoning = "length_empty", int(limit)  # it thought until the limit and said nothing
        elif owner.config.reasoning_tokens:
            reasoning = owner.config.reasoning_tokens
        if fault in LENGTH_TEXT:
            text, finish = LENGTH_TEXT[fault], "length"
        elif response_format.get("type") == "json_schema":
            spec = response_format["json_schema"]
            answer = _schema_answer(spec.get("name", ""), spec.get("schema", {}), seed, user)
            if fault == "schema":
                answer = {"unexpected": "this answer does not fit the schema"}
            text = json.dumps(answer)
        else:
            text = "" if fault == "schema" else _plain_answer(system, user, owner.config.policy_words)
        prompt_tokens = len(json.dumps(messages)) // 4
        completion: dict[str, Any] = {
            "id": f"chatcmpl-{stats.requests}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": [{"index": 0, "finish_reason": finish,
                         "message": {"role": "assistant", "content": text, "refusal": None}}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(text) // 4 + 1 + reasoning,
                      "total_tokens": prompt_tokens + len(text) // 4 + 1 + reasoning},
        }
        if reasoning:
            completion["usage"]["completion_tokens_details"] = {"reasoning_tokens": reasoning}
        if owner.config.omit_usage:
            del completion["usage"]
        self._json(200, completion)
        with owner._lock:
            stats.answered += 1

    def _image(self, body: dict[str, Any], stats: ServiceStats, broken: bool = False) -> None:
        owner, config = self.server_owner, self.server_owner.config
        prompt = str(body.get("prompt", ""))
        words = {w.strip(".,;:!?").lower() for w in prompt.split()}
        if words & set(config.policy_words):
            stats.faults["policy"] += 1
            self._error(400, "Your request was rejected by the safety system. If you believe this is an error, "
                        "contact us.", "image_generation_user_error", code="moderation_blocked")
            return
        if str(body.get("model", "")).startswith("gpt-image") and "response_format" in body:
            self._error(400, "Unknown parameter: 'response_format'.", "invalid_request_error",
                        code="unknown_parameter", param="response_format")
            return
        data = owner.paint(prompt) if not broken else b"this is not an image at all"
        data += b"\x00" * config.image_padding
        item: dict[str, Any] = {}
        if config.image_mode == "url":
            name = f"{hashlib.sha256(data).hexdigest()[:16]}.{config.image_format}"
            with owner._lock:
                owner.files[name] = data
            item["url"] = f"{config.image_url_base or f'http://127.0.0.1:{owner.port}'}/files/{name}"
        else:
            item["b64_json"] = base64.b64encode(data).decode()
        if config.revised_prompt:
            item["revised_prompt"] = f"A carefully composed picture: {prompt[:200]}"
        usage = config.image_usage
        answer: dict[str, Any] = {
            "created": int(time.time()), "data": [item], "output_format": config.image_format,
            "usage": {"input_tokens": usage["text"], "input_tokens_details": {"text_tokens": usage["text"], "image_tokens": 0},
                      "output_tokens": usage["image_out"],
                      "output_tokens_details": {"image_tokens": usage["image_out"], "text_tokens": 0},
                      "total_tokens": usage["text"] + usage["image_out"]},
        }
        if config.omit_usage:
            del answer["usage"]
        self._json(200, answer)
        with owner._lock:
            stats.answered += 1
