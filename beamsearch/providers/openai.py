"""The OpenAI-compatible provider: text, vision and image roles over `AsyncOpenAI`.

Each role has its own settings (model, base_url, key variable, timeout), so text and vision can run on a
local OpenAI-compatible server while images come from a hosted one; roles that name the same endpoint
share one client (`openai_clients.ClientPool`). The SDK's own retries are off: the gate retries, with limits shared across lanes. Every SDK
failure is translated by `openai_errors` into the error vocabulary the gate understands. A model that
refuses a parameter or a keyword of the answer's JSON schema is asked again at once without it, and the
refusal is remembered for that model (`openai_adapt`), so it costs one extra request per model rather
than a failed step. A reasoning model's thinking room is learned the same way (`_chat_usage`).

Requests go through the client's public `post(path, body=..., cast_to=httpx2.Response)`: the answer's
JSON is read once into plain data (the SDK's typed models would be built and thrown away), and its
headers are at hand, so every result carries the server's rate-limit advice in `meta["ratelimit"]`
(see `beamsearch.ratelimit`) and its request id in `meta["request_id"]`.

The SDK takes about half a second to import. This module does not import it at the top, so that
`preload()` (from `openai_clients`, re-exported here) can start that import in a background thread
while the caller does other work.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import io
import json
import time
from pathlib import Path
from typing import Any

from beamsearch.costs import typical_usage
from beamsearch.endpoints import MissingKey, host_of, role_key
from beamsearch.errors import AnswerCutOff, CallError, FatalCallError, InvalidAnswer, SettingsError, paid
from beamsearch.providers.base import ImageRequest, ImageResult, TextRequest, TextResult, Usage, VisionRequest
from beamsearch.providers.openai_adapt import Adaptations
from beamsearch.providers.openai_clients import ClientPool, _Shared, new_client, preload, sdk_failures
from beamsearch.ratelimit import advice_from_headers
from beamsearch.shrink import MIME, fits, to_jpeg

__all__ = ["ClientPool", "OpenAIRole", "build_role", "data_url", "image_format", "new_client", "preload"]

MAX_ADAPTATIONS = 4
MAX_REASONING_ROOM = 16_000  # the most tokens of thinking room a role adds to an answer's own limit
PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
PATHS = {"text": "/chat/completions", "vision": "/chat/completions", "image": "/images/generations"}


def api_key(role: str, settings: Any) -> str | None:
    """The key for `role` from its environment variable, or None for a keyless server (`api_key_env:
    none`, or an unset variable on a loopback endpoint: see `endpoints.role_key`); a clear SettingsError
    when a key is needed and missing."""
    try:
        return role_key(settings)
    except MissingKey:
        raise SettingsError(
            f"The {role} role needs an API key in the environment variable {settings.api_key_env}, which is not "
            "set: set it, set api_key_env: none for a server without keys, or run offline with --provider sim."
        ) from None


def field(obj: Any, name: str) -> Any:
    """A field of an SDK object, or of the plain dict a malformed answer may leave in its place."""
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def image_format(data: bytes) -> str | None:
    """'png', 'jpeg' or 'webp' from the magic bytes (what the file is, not what anyone claims it is)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    return None


def data_url(path: Path, max_side: int | None) -> str:
    """An image file as a data URL, sent as it is when its longer side is within `max_side` and vision
    models take its format (a prepared vision input always is: it is read, never decoded), else shrunk
    to a JPEG (see `beamsearch.shrink`).

    Vision models bill and slow down by image size, and the judge does not need more pixels than its
    `detail` level looks at."""
    raw = Path(path).read_bytes()
    fmt = image_format(raw)
    if fmt in MIME and max_side is None:
        return f"data:{MIME[fmt]};base64,{base64.b64encode(raw).decode('ascii')}"
    from PIL import Image

    with Image.open(io.BytesIO(raw)) as image:  # the header alone: its size
        size = image.size
    if fits(fmt, size, max_side):
        return f"data:{MIME[str(fmt)]};base64,{base64.b64encode(raw).decode('ascii')}"
    jpeg, _ = to_jpeg(raw, max_side or max(size))
    return f"data:image/jpeg;base64,{base64.b64encode(jpeg).decode('ascii')}"


class OpenAIRole:
    """One role: its settings, a share of its endpoint's client, and what it learned about its model's
    parameters."""

    def __init__(self, role: str, settings: Any, key: str | None, pool: ClientPool | None = None) -> None:
        from beamsearch.providers.openai_errors import ErrorMapper

        self.role = role
        self.settings = settings
        self.model: str = settings.model
        self._pool = pool if pool is not None else ClientPool.for_running_loop()
        from beamsearch.providers.bounded import body_cap

        self._shared: _Shared | None = self._pool.acquire(settings.base_url, key or "",
                                                          body_cap(role, settings) if role == "image" else None)
        self.client = self._shared.client
        self._path = PATHS[role]
        self.errors = ErrorMapper(role, settings.model, settings.base_url, settings.api_key_env, key or "")
        self.keyless = key is None  # no key: the Authorization header is left out of every request
        self.adaptations = Adaptations()  # what this role's model refused, left out from then on
        self.reasoning_room = 0  # tokens this role's model was seen to spend thinking (see `_chat_usage`)

    async def aclose(self) -> None:
        shared, self._shared = self._shared, None
        if shared is not None:
            await self._pool.release(shared)

    async def _post(self, body: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """One request: the answer's JSON as plain data, and what its headers tell (rate-limit advice,
        request id) for the result's meta. A malformed body raises json.JSONDecodeError, as the SDK would."""
        import httpx2

        options: dict[str, Any] = {"timeout": self.settings.timeout}
        if self.keyless:  # the SDK's way to send no Authorization header at all
            import openai

            options["headers"] = {"Authorization": openai.Omit()}
        response = await self.client.post(self._path, body=body, cast_to=httpx2.Response, options=options)
        data = json.loads(response.content)
        meta: dict[str, Any] = {}
        advice = advice_from_headers(response.headers, time.monotonic())
        if advice is not None:
            meta["ratelimit"] = advice.as_meta()
        request_id = response.headers.get("x-request-id")
        if request_id:
            meta["request_id"] = request_id[:80]
        return data, meta

    async def _call(self, params: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """Call the service, adapting to parameter refusals at once; map every other failure.
        Returns the answer and the result's meta: the headers' advice and what had to be adapted
        during this call (recorded with the step)."""
        learned: list[str] = []
        failures = sdk_failures()
        for _ in range(MAX_ADAPTATIONS + 1):
            sent = self.adaptations.adapt(params)
            try:
                answer, meta = await self._post(sent)
            except failures as exc:
                change = self.adaptations.learn(exc, params, sent)
                if change is None:
                    raise self.errors.map(exc) from None
                learned.append(change)
                continue
            return answer, {**meta, "adapted": learned} if learned else meta
        import openai

        raise self.errors.map(openai.OpenAIError("the model kept refusing parameters")) from None

    # --- chat (text and vision) -----------------------------------------------------------------

    async def _chat(self, request: TextRequest, content: Any) -> TextResult:
        limit = request.max_output_tokens + self.reasoning_room
        params: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "system", "content": request.system}, {"role": "user", "content": content}],
            "max_completion_tokens": limit,
        }
        temperature = request.temperature if request.temperature is not None else self.settings.temperature
        if temperature is not None:
            params["temperature"] = temperature
        if request.schema is not None:
            params["response_format"] = dict(  # OpenAI's wire format, not an event
                type="json_schema",
                json_schema={"name": request.schema_name or "answer", "schema": request.schema, "strict": True},
            )
        completion, meta = await self._call(params)
        choices = field(completion, "choices")
        if not isinstance(choices, list) or not choices:
            raise InvalidAnswer(f"the {self.role} service answered without any choice")
        result_usage = self._chat_usage(completion, meta)
        message = field(choices[0], "message")
        text = field(message, "content")
        finish = field(choices[0], "finish_reason")
        if not isinstance(text, str) or not text.strip():  # an answer all the same: it is paid for
            if finish == "length":
                raise AnswerCutOff(f"the {self.role} service's answer was cut off at the length limit ({limit} "
                                   "tokens) before any text", usage=result_usage)
            refusal = field(message, "refusal")
            why = f"refused: {str(refusal)[:120]}" if refusal else f"finish_reason {finish}"
            raise InvalidAnswer(f"the {self.role} service gave an empty answer ({why})", usage=result_usage)
        return TextResult(text=text, usage=result_usage, meta=meta,
                          finish_reason=finish if isinstance(finish, str) else None)

    def _chat_usage(self, completion: Any, meta: dict[str, Any]) -> Usage:
        """What a chat answer cost: its usage block, else (some compatible servers send none) the typical
        call, never a free one. Reasoning tokens it reports teach the role how much room its model needs
        to think (`reasoning_room`, added to every later answer's limit)."""
        usage = field(completion, "usage")
        if usage is None:
            meta["usage_estimated"] = True
            return typical_usage(self.role, self.model)
        try:
            reasoning = int(field(field(usage, "completion_tokens_details"), "reasoning_tokens") or 0)
            counted = Usage(model=self.model, input_tokens=int(field(usage, "prompt_tokens") or 0),
                            output_tokens=int(field(usage, "completion_tokens") or 0))
        except (TypeError, ValueError):
            raise InvalidAnswer(f"the {self.role} service sent a malformed usage block",
                                usage=typical_usage(self.role, self.model)) from None
        if reasoning > 0:
            meta["reasoning_tokens"] = reasoning
            self.reasoning_room = min(MAX_REASONING_ROOM, max(self.reasoning_room, reasoning * 3 // 2))
        return counted

    async def complete(self, request: TextRequest) -> TextResult:
        return await self._chat(request, request.user)

    async def judge(self, request: VisionRequest) -> TextResult:
        max_side = getattr(self.settings, "vision_max_side", None)
        detail = getattr(self.settings, "detail", "auto")
        try:
            urls = [await asyncio.to_thread(data_url, path, max_side) for path in request.images]
        except Exception as exc:  # a file gone or damaged since it was checked; Pillow raises many types
            raise InvalidAnswer(f"the image to judge cannot be read ({type(exc).__name__})") from None
        content: list[dict[str, Any]] = [dict(type="text", text=request.user)]  # OpenAI's content parts
        content += [dict(type="image_url", image_url={"url": url, "detail": detail}) for url in urls]
        return await self._chat(request, content)

    async def parallelism(self) -> int | None:
        """How many requests this role's server serves at once, when a local server says so (see
        `openai_slots`), so that the caller can cap the role's concurrency to it; None when it does not."""
        from beamsearch.providers.openai_slots import ask_slots

        shared = self._shared
        if shared is None:
            return None
        if shared.slots is None:  # roles of one endpoint share its answer: the server is asked once
            shared.slots = asyncio.ensure_future(ask_slots(self.client, self.settings.base_url))
        return await asyncio.shield(shared.slots)

    # --- images ---------------------------------------------------------------------------------

    async def generate(self, request: ImageRequest) -> ImageResult:
        params: dict[str, Any] = {"model": self.model, "prompt": request.prompt, "n": 1}
        if self.settings.size:
            params["size"] = self.settings.size
        if self.settings.quality:
            params["quality"] = self.settings.quality
        if not self.model.startswith("gpt-image"):
            params["response_format"] = "b64_json"  # gpt-image models always answer base64 and refuse it
        answer, meta = await self._call(params)
        items = field(answer, "data")
        if not isinstance(items, list) or not items:
            raise InvalidAnswer("the image service answered without an image")
        reported = field(answer, "usage")
        if reported is None:  # no usage block: bill the typical call (per-image prices included), never $0
            meta["usage_estimated"] = True
        try:
            usage = self._image_usage(reported, len(items))
        except (TypeError, ValueError):
            raise InvalidAnswer("the image service sent a malformed usage block",
                                usage=self._image_usage(None, len(items))) from None
        try:
            data, fmt = await self._image_bytes(items[0])
        except CallError as exc:  # the picture was made, and paid for, whatever became of its bytes
            raise paid(exc, usage) from None
        revised = field(items[0], "revised_prompt")
        return ImageResult(data=data, format=fmt, usage=usage,
                           revised_prompt=revised if isinstance(revised, str) and revised else None, meta=meta)

    async def _image_bytes(self, item: Any) -> tuple[bytes, str]:
        """The picture of an answer's item, from its base64 or its URL, and its format."""
        encoded, url = field(item, "b64_json"), field(item, "url")
        cap = int(getattr(self.settings, "max_download_bytes", 50_000_000))
        if isinstance(encoded, str) and len(encoded) > cap * 4 // 3 + 4:
            raise FatalCallError(f"the image service at {host_of(self.settings.base_url)} sent an image larger than "
                                 f"max_download_bytes ({cap})")
        if isinstance(encoded, str) and encoded:
            try:
                data = base64.b64decode(encoded, validate=False)
            except (binascii.Error, ValueError):
                raise InvalidAnswer("the image service sent base64 that does not decode") from None
        elif isinstance(url, str) and url:
            data = await self._download(url)
        else:
            raise InvalidAnswer("the image service answered with neither image data nor a URL")
        fmt = image_format(data)
        if fmt not in PIL_FORMATS:
            raise InvalidAnswer("the image service sent data that is not a PNG, JPEG or WebP image")
        return data, fmt

    def _image_usage(self, usage: Any, count: int) -> Usage:
        """Token usage when the service reports it (gpt-image-*); else the typical image call's usage, which
        prices a per-image model exactly and a token-priced one at the budget's usual estimate.
        Output tokens of an image model are image tokens unless the service says otherwise."""
        if usage is None:
            one = typical_usage("image", self.model)
            return dataclasses.replace(one, image_output_tokens=one.image_output_tokens * count, images=count)
        details_in = field(usage, "input_tokens_details")
        details_out = field(usage, "output_tokens_details")
        image_in = int(field(details_in, "image_tokens") or 0)
        if details_in is not None:
            text_in = int(field(details_in, "text_tokens") or 0)
        else:
            text_in = max(0, int(field(usage, "input_tokens") or 0) - image_in)
        if details_out is not None:
            image_out = int(field(details_out, "image_tokens") or 0)
            text_out = int(field(details_out, "text_tokens") or 0)
        else:
            image_out, text_out = int(field(usage, "output_tokens") or 0), 0
        return Usage(model=self.model, input_tokens=text_in, output_tokens=text_out,
                     image_input_tokens=image_in, image_output_tokens=image_out, images=count)

    async def _download(self, url: str) -> bytes:
        """Fetch an image answer given as a URL: https (or the endpoint's own host), same-host redirects,
        the role's timeout and a cap on its size (see `bounded.download`)."""
        from beamsearch.providers.bounded import download

        cap = int(getattr(self.settings, "max_download_bytes", 50_000_000))
        return await download(url, endpoint=self.settings.base_url, cap=cap, timeout=self.settings.timeout)


def build_role(role: str, role_settings: Any) -> OpenAIRole:
    """The provider object for `role` ("text", "image" or "vision"); raises SettingsError without a key it
    needs."""
    if role not in ("text", "image", "vision"):
        raise ValueError(f"unknown role {role!r}")
    return OpenAIRole(role, role_settings, api_key(role, role_settings))
