"""CPU per request on the HTTP path, in this process, against the loopback server at zero latency:

* `typed`: the SDK's resource methods (`chat.completions.create`, `images.generate`), which build typed
  models of every answer (the provider's path before issue 13);
* `provider`: what `providers/openai.py` does now: `client.post(path, cast_to=httpx2.Response)` and one
  `json.loads`, on a client from `openai_clients.new_client` (no TLS context for http);
* `bare`: a plain `httpx2.AsyncClient.post` and `json.loads`, the floor for this HTTP stack.

Bodies as a run sends them: a text request (~2 KB), a vision request with a 768 px PNG data URL, and an
image request whose answer is a photo-weight 1024 px PNG in base64. Medians over rounds taken in turn.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import statistics
import time
from collections import defaultdict
from typing import Any

from benchmarks.loopback_server import photo_png
from benchmarks.real_path import loopback_server


def bodies(side: int) -> dict[str, tuple[str, dict[str, Any]]]:
    from PIL import Image

    with Image.open(io.BytesIO(photo_png(side, seed=9))) as image:
        small = image.copy()
    small.thumbnail((side * 3 // 4, side * 3 // 4))
    buffer = io.BytesIO()
    small.save(buffer, "PNG")
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    schema = {"type": "object", "properties": {"score": {"type": "number"}, "notes": {"type": "string"}},
              "required": ["score", "notes"], "additionalProperties": False}
    return {
        "text": ("/chat/completions", {"model": "m", "max_completion_tokens": 300, "temperature": 0.9, "messages": [
            {"role": "system", "content": "You write the WHAT half of an image prompt. " * 20},
            {"role": "user", "content": "The user's idea: a red lighthouse by the sea at night. " * 10}]}),
        "vision": ("/chat/completions", {"model": "m", "max_completion_tokens": 300, "messages": [
            {"role": "system", "content": "You are a strict judge."},
            {"role": "user", "content": [{"type": "text", "text": "Judge the attached image."},
                                         {"type": "image_url", "image_url": {"url": url, "detail": "low"}}]}],
            "response_format": {"type": "json_schema",
                                "json_schema": {"name": "judge_aesthetic", "schema": schema, "strict": True}}}),
        "image": ("/images/generations", {"model": "gpt-image-2", "prompt": "a red lighthouse " * 20, "n": 1,
                                          "size": "1024x1024", "quality": "medium"}),
    }


async def _measure(url: str, work: dict[str, tuple[str, dict[str, Any]]], rounds: int, per_round: int) -> dict[str, Any]:
    import httpx2

    from beamsearch.providers.openai_clients import new_client

    sdk, bare = new_client(url, "loopback-key")[0], httpx2.AsyncClient(base_url=url)

    async def typed(path: str, body: dict[str, Any]) -> Any:
        if path == "/images/generations":
            return await sdk.images.generate(**body)
        return await sdk.chat.completions.create(**body)

    async def provider(path: str, body: dict[str, Any]) -> Any:
        return json.loads((await sdk.post(path, body=body, cast_to=httpx2.Response, options={"timeout": 60})).content)

    async def plain(path: str, body: dict[str, Any]) -> Any:
        return json.loads((await bare.post(path, json=body, headers={"Authorization": "Bearer k"})).content)

    ways = {"typed": typed, "provider": provider, "bare": plain}
    samples: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for _ in range(rounds):
        for name, call in ways.items():
            for kind, (path, body) in work.items():
                await call(path, body)  # warm: connection open, modules imported
                begin = time.process_time()
                for _ in range(per_round):
                    await call(path, body)
                samples[name][kind].append(1000 * (time.process_time() - begin) / per_round)
    await sdk.close()
    await bare.aclose()
    return {name: {kind: statistics.median(v) for kind, v in kinds.items()} for name, kinds in samples.items()}


def sdk_overhead(profile: Any) -> dict[str, Any]:
    quick = profile.repeats == 1 and profile.real_side < 1024
    work = bodies(profile.real_side)
    with loopback_server(profile.real_side) as server:
        server.reset({"text": 0.0, "image": 0.0, "vision": 0.0}, 0.0, 0)
        result = asyncio.run(_measure(server.url, work, 2 if quick else 7, 3 if quick else 15))
    return {"image_side": profile.real_side, "ms_cpu_per_request": result}
