"""An OpenAI-compatible server on 127.0.0.1 for the real-path benchmark, in a process of its own.

    python benchmarks/loopback_server.py --side 1024 --pool 4     # prints "PORT <n>" once ready

It answers `POST /v1/chat/completions` (text and vision) and `POST /v1/images/generations` after a latency
drawn per request: the service's mean +- jitter, from a hash of the request's text and how many identical
requests came before it (so a run's draws do not depend on which lane happens to ask first). Its CPU must
not compete with the client's on a 2-core machine, so the heavy answers are made before the run:

* images are photo-weight PNGs (noise-like content, about 1.5 MB at 1024 px), made once at start-up,
  base64-encoded once, and kept as the first part of each JSON body. Each answer is still a different
  file: a small text chunk naming the request (`bench-request`) goes before IEND, and only the last few
  bytes of the PNG (from a multiple of 3, so base64 parts concatenate) are encoded per request. Its
  SHA-256 is finished from a precomputed prefix state, so the server can tell which request a file the
  client saved came from (`steps` records the digest of the bytes as received);
* every text answer carries its request's token (`#r17`), in the text itself or in the judge's notes, so
  a step in the client's events.jsonl names the request that answered it.

Each request is logged with its arrival time, the latency applied and the time its answer was sent
(`time.monotonic()`, a system-wide clock on Linux, so the parent's and the client's readings compare).
Control: `POST /_control/reset` (JSON: latency, jitter, seed) clears the log and the draws before a run;
`GET /_control/log` returns the log; `POST /_control/quit` stops the server.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import random
import struct
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

WORDS = ("amber harbour quiet lantern storm cliff gull wave night moon drift salt pier mist copper rope tide "
         "glow reef dune spray cobalt ember tower keeper beacon shore hull sail foam gale").split()


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def photo_png(side: int, seed: int) -> bytes:
    """A noise-like PNG that compresses as a photograph does (about 1.5 MB at 1024 px): a soft scene
    of a few coloured shapes, blended with film grain."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    scene = Image.new("RGB", (side, side), tuple(rng.randrange(40, 200) for _ in range(3)))
    draw = ImageDraw.Draw(scene)
    for _ in range(6):
        x, y, size = rng.randrange(side), rng.randrange(side), rng.randrange(side // 8, side // 2)
        draw.ellipse((x - size, y - size, x + size, y + size), fill=tuple(rng.randrange(256) for _ in range(3)))
    grain = Image.effect_noise((side, side), 32 + seed % 7).convert("RGB")
    buffer = io.BytesIO()
    Image.blend(scene, grain, 0.12).save(buffer, "PNG")
    return buffer.getvalue()


class PreparedImage:
    """One PNG, split where a per-request text chunk can go: the JSON body's head (with the base64 of
    everything before a 3-byte boundary), the few bytes after it, and the digest state of the head."""

    def __init__(self, png: bytes) -> None:
        iend = png.rindex(b"IEND") - 4
        cut = iend - iend % 3
        self.tail, self.iend = png[cut:iend], png[iend:]
        self.head = b'{"created": 1, "output_format": "png", "data": [{"b64_json": "' + base64.b64encode(png[:cut])
        self.digest = hashlib.sha256(png[:cut])
        self.size = len(png)

    def answer(self, token: str, usage: dict[str, Any]) -> tuple[list[bytes], str]:
        """The body's parts and the SHA-256 prefix (16 hex digits) of the PNG as the client will get it."""
        tail = self.tail + png_chunk(b"tEXt", b"bench-request\x00" + token.encode()) + self.iend
        digest = self.digest.copy()
        digest.update(tail)
        rest = base64.b64encode(tail) + b'"}], "usage": ' + json.dumps(usage).encode() + b"}"
        return [self.head, rest], digest.hexdigest()[:16]


IMAGE_USAGE = {"input_tokens": 40, "input_tokens_details": {"text_tokens": 40, "image_tokens": 0},
               "output_tokens": 1056, "output_tokens_details": {"image_tokens": 1056, "text_tokens": 0},
               "total_tokens": 1096}


def _text_parts(messages: list[dict[str, Any]]) -> str:
    out = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            out.append(content)
        elif isinstance(content, list):
            out.extend(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return "\n".join(out)


def _has_image(messages: list[dict[str, Any]]) -> bool:
    return any(isinstance(m.get("content"), list) and any(isinstance(p, dict) and p.get("type") == "image_url"
                                                          for p in m["content"]) for m in messages)


def fill(schema: dict[str, Any], token: str, h: bytes) -> Any:
    """A value that fits a (strict) JSON schema, with the token in its strings."""
    kind = schema.get("type")
    if "enum" in schema:
        return schema["enum"][h[0] % len(schema["enum"])]
    if kind == "object":
        return {name: fill(spec, token, h) for name, spec in schema.get("properties", {}).items()}
    if kind == "array":
        return [fill(schema.get("items", {"type": "string"}), token, h)]
    if kind in ("number", "integer"):
        low, high = schema.get("minimum", 1), schema.get("maximum", 10)
        return low + h[1] % (int(high - low) + 1)
    return f"{' '.join(WORDS[b % len(WORDS)] for b in h[2:6])} {token}"


def structured(name: str, schema: dict[str, Any], token: str, h: bytes) -> dict[str, Any]:
    """The answers of beamsearch's own tasks on their own scales; anything else by its schema."""
    words = [WORDS[b % len(WORDS)] for b in h[4:12]]
    if name == "judge_alignment":
        return {"score": 40 + h[0] % 56, "found": words[:2], "missing": words[2:3] if h[1] % 2 else [],
                "notes": f"Mostly there {token}"}
    if name == "judge_aesthetic":
        return {"score": round(4 + (h[0] % 51) / 10, 1), "weak": words[:1] if h[1] % 2 else [],
                "notes": f"Decent {token}"}
    if name == "critique":
        return {"critique": f"The {words[0]} lacks a clear focal point {token}",
                "suggestions": [f"add a {words[1]} {words[2]}", f"use {words[3]} light"]}
    return fill(schema, token, h)


class State:
    """The draws and the log of one run; reset between runs."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset({})

    def reset(self, options: dict[str, Any]) -> None:
        with self.lock:
            self.latency = {"text": 0.2, "image": 1.0, "vision": 0.3, **options.get("latency", {})}
            self.jitter = float(options.get("jitter", 0.5))
            self.seed = str(options.get("seed", 0))
            self.seen: dict[str, int] = {}
            self.log: list[dict[str, Any]] = []
            self.count = 0

    def admit(self, service: str, text: str) -> tuple[int, float]:
        """A request's number and its drawn latency."""
        with self.lock:
            self.count += 1
            base = hashlib.sha256(f"{self.seed}|{service}|{text}".encode()).hexdigest()
            nth = self.seen.get(base, 0)
            self.seen[base] = nth + 1
            draw = int(hashlib.sha256(f"{base}|{nth}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
            mean = float(self.latency.get(service, 0.0))
            return self.count, max(0.0, mean * (1 + self.jitter * (2 * draw - 1)))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: State
    images: list[PreparedImage]

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _send(self, status: int, parts: list[bytes], headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(sum(len(p) for p in parts)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        for part in parts:
            self.wfile.write(part)
        self.wfile.flush()

    def do_GET(self) -> None:
        if self.path == "/_control/log":
            with self.state.lock:
                self._send(200, [json.dumps(self.state.log).encode()])
            return
        self._send(404, [b'{"error": {"message": "not found", "type": "not_found"}}'])

    def do_POST(self) -> None:
        arrive = time.monotonic()
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path.startswith("/_control/"):
            self._control(body)
            return
        request = json.loads(body)
        if self.path.endswith("/images/generations"):
            service, text = "image", str(request.get("prompt", ""))
        else:
            messages = request.get("messages", [])
            service = "vision" if _has_image(messages) else "text"
            schema = (request.get("response_format") or {}).get("json_schema", {})
            text = f"{schema.get('name', '')}|{_text_parts(messages)}"
        number, latency = self.state.admit(service, text)
        token = f"#r{number}"
        h = hashlib.sha256(f"{text}|{number}".encode()).digest()
        entry: dict[str, Any] = {"id": number, "token": token, "service": service, "arrive": arrive,
                                 "latency": latency, "bytes_in": len(body)}
        time.sleep(latency)
        if service == "image":
            parts, entry["digest"] = self.images[number % len(self.images)].answer(token, IMAGE_USAGE)
        else:
            parts = [self._chat(request, token, h)]
        self._send(200, parts)
        entry["sent"] = time.monotonic()
        entry["bytes_out"] = sum(len(p) for p in parts)
        with self.state.lock:
            self.state.log.append(entry)

    def _chat(self, request: dict[str, Any], token: str, h: bytes) -> bytes:
        spec = (request.get("response_format") or {}).get("json_schema")
        if spec:
            text = json.dumps(structured(spec.get("name", ""), spec.get("schema", {}), token, h))
        else:
            text = " ".join(WORDS[b % len(WORDS)] for b in h[:24]).capitalize() + f". {token}"
        prompt_tokens = len(json.dumps(request.get("messages", []))) // 40
        return json.dumps({
            "id": f"chatcmpl-{token[2:]}", "object": "chat.completion", "created": 1, "model": request.get("model"),
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text, "refusal": None}}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(text) // 4,
                      "total_tokens": prompt_tokens + len(text) // 4},
        }).encode()

    def _control(self, body: bytes) -> None:
        if self.path == "/_control/reset":
            self.state.reset(json.loads(body or b"{}"))
            self._send(200, [b"{}"])
        elif self.path == "/_control/quit":
            self._send(200, [b"{}"])
            threading.Thread(target=self.server.shutdown, daemon=True).start()
        else:
            self._send(404, [b"{}"])


def serve(side: int, pool: int) -> None:
    images = [PreparedImage(photo_png(side, seed)) for seed in range(pool)]

    class Bound(Handler):
        pass

    Bound.state, Bound.images = State(), images
    server = ThreadingHTTPServer(("127.0.0.1", 0), Bound, bind_and_activate=False)
    server.request_queue_size = 256  # lanes connect at once: a short listen backlog would drop SYNs
    server.daemon_threads = True
    server.server_bind()
    server.server_activate()
    sizes = sorted(image.size for image in images)
    print(f"PORT {server.server_address[1]} IMAGE_BYTES {sizes[len(sizes) // 2]}", flush=True)
    server.serve_forever(poll_interval=0.05)
    server.server_close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=1024, help="image side in pixels")
    parser.add_argument("--pool", type=int, default=4, help="distinct images to prepare")
    args = parser.parse_args(argv)
    serve(args.side, args.pool)


if __name__ == "__main__":
    sys.exit(main())
