"""A recording reverse proxy between beamsearch and the llama.cpp server (interop check, issue 17).

beamsearch's log says what a step answered, not how the server ended each request. The proxy sees every
request as the server does: the `max_tokens` asked for, whether a schema and an Authorization header were
sent (never the header's value), the status, `finish_reason`, usage and llama.cpp's own `timings`, and
whether the client gave up (a timeout) before the answer came. When the client hangs up, the proxy hangs
up on the server too, so the server sees what it would have seen without the proxy in between.
"""

from __future__ import annotations

import http.client
import json
import select
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


def summarize_request(body: bytes) -> dict[str, Any]:
    """What a chat request asked for, without its prompts."""
    try:
        data = json.loads(body) if body else {}
    except ValueError:
        return {"request_json": False}
    if not isinstance(data, dict):
        return {"request_json": False}
    response_format = data.get("response_format") or {}
    return {"model": data.get("model"), "max_tokens": data.get("max_completion_tokens", data.get("max_tokens")),
            "temperature": data.get("temperature"), "schema": isinstance(response_format, dict)
            and response_format.get("type") == "json_schema", "images": json.dumps(data.get("messages", "")).count(
                '"image_url"')}


def summarize_response(status: int, body: bytes) -> dict[str, Any]:
    """finish_reason, usage and llama.cpp's timings of an answer; the error text of a refusal."""
    try:
        data = json.loads(body)
    except ValueError:
        return {"response_json": False, "error": body[:300].decode("utf-8", "replace") if status >= 400 else None}
    if not isinstance(data, dict):
        return {"response_json": False}
    if status >= 400:
        return {"error": json.dumps(data.get("error", data))[:400]}
    choices = data.get("choices") or [{}]
    usage = data.get("usage") or {}
    timings = data.get("timings") or {}
    content = (choices[0].get("message") or {}).get("content")
    return {"finish_reason": choices[0].get("finish_reason"), "prompt_tokens": usage.get("prompt_tokens"),
            "completion_tokens": usage.get("completion_tokens"), "content_chars": len(content or ""),
            "predicted_ms": timings.get("predicted_ms"), "prompt_ms": timings.get("prompt_ms"),
            "predicted_per_second": timings.get("predicted_per_second")}


class RecordingProxy:
    """Forward 127.0.0.1:<port> to the upstream server and keep one record per request."""

    def __init__(self, upstream_port: int, record_path: Path) -> None:
        self.upstream_port = upstream_port
        self.record_path = record_path
        self.records: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.origin = time.monotonic()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(self, record: dict[str, Any]) -> None:
        with self.lock:
            self.records.append(record)
            with self.record_path.open("a", encoding="utf-8") as out:
                out.write(json.dumps(record) + "\n")

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # the records are the log
                pass

            def do_GET(self) -> None:
                proxy.forward(self, b"")

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                proxy.forward(self, self.rfile.read(length))

        return Handler

    def forward(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        record: dict[str, Any] = {"t": round(time.monotonic() - self.origin, 3), "method": handler.command,
                                  "path": handler.path, "authorization": "authorization" in handler.headers,
                                  **summarize_request(body)}
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in HOP_HEADERS}
        upstream = http.client.HTTPConnection("127.0.0.1", self.upstream_port)
        started = time.monotonic()
        try:
            upstream.request(handler.command, handler.path, body=body or None, headers=headers)
            if not self._wait(upstream, handler.connection):
                record.update(client_gone=True, seconds=round(time.monotonic() - started, 3))
                handler.close_connection = True
                return
            response = upstream.getresponse()
            payload = response.read()
            record.update(status=response.status, seconds=round(time.monotonic() - started, 3),
                          **summarize_response(response.status, payload))
            try:
                handler.send_response(response.status)
                for name, value in response.getheaders():
                    if name.lower() not in HOP_HEADERS:
                        handler.send_header(name, value)
                handler.send_header("content-length", str(len(payload)))
                handler.end_headers()
                handler.wfile.write(payload)
            except OSError:
                record["client_gone"] = True
                handler.close_connection = True
        finally:
            upstream.close()
            self.add(record)

    @staticmethod
    def _wait(upstream: http.client.HTTPConnection, client: socket.socket) -> bool:
        """Wait for the server's answer; False (and the upstream closed) when the client hangs up first."""
        watching = True
        while True:
            sockets = [upstream.sock, client] if watching else [upstream.sock]
            ready, _, _ = select.select(sockets, [], [], 0.5)
            if upstream.sock in ready:
                return True
            if client in ready:
                try:
                    peeked = client.recv(1, socket.MSG_PEEK)
                except OSError:
                    peeked = b""
                if not peeked:
                    upstream.close()
                    return False
                watching = False  # the client sent more (pipelining): stop watching, just wait

    def __enter__(self) -> RecordingProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
