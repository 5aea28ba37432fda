"""The three small protocols every provider implements, and the plain data they exchange.

A request carries both the rendered chat messages (what a real model reads) and the step's `task` and
`variables` (what the offline simulator reads, since it cannot understand prose). Providers know nothing
about beam search: they answer one request at a time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class Usage:
    """What one call consumed, in the units the price table is written in."""

    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    image_input_tokens: int = 0
    image_output_tokens: int = 0
    images: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v or k == "model"}

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Usage:
        return Usage(**data)


@dataclass(frozen=True)
class TextRequest:
    """A chat completion: system + user text, optionally a JSON schema the answer must follow."""

    key: str
    task: str
    system: str
    user: str
    variables: dict[str, Any] = field(default_factory=dict)
    schema: dict[str, Any] | None = None
    schema_name: str = "answer"
    temperature: float | None = None
    max_output_tokens: int = 1200  # the answer's tokens; steps set it per task (`beamsearch.lengths`)


@dataclass(frozen=True)
class VisionRequest(TextRequest):
    """A chat completion that also looks at images stored on disk (never held in memory by callers)."""

    images: tuple[Path, ...] = ()


@dataclass(frozen=True)
class TextResult:
    """The model's answer text, what it cost, and provider metadata worth recording (e.g. sim truth).
    `finish_reason` is the server's word on why the answer ended ("length": cut off by the token limit)."""

    text: str
    usage: Usage
    meta: dict[str, Any] = field(default_factory=dict)
    finish_reason: str | None = None


@dataclass(frozen=True)
class ImageRequest:
    key: str
    prompt: str


@dataclass(frozen=True)
class ImageResult:
    """Encoded image bytes in their own format ('png', 'jpeg' or 'webp')."""

    data: bytes
    format: str
    usage: Usage
    revised_prompt: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


class TextModel(Protocol):
    async def complete(self, request: TextRequest) -> TextResult: ...


class VisionModel(Protocol):
    async def judge(self, request: VisionRequest) -> TextResult: ...


class ImageModel(Protocol):
    async def generate(self, request: ImageRequest) -> ImageResult: ...


@dataclass
class Providers:
    """The three roles, possibly served by different providers."""

    text: TextModel
    image: ImageModel
    vision: VisionModel
    labels: dict[str, str] = field(default_factory=dict)

    async def aclose(self) -> None:
        seen: set[int] = set()
        for model in (self.text, self.image, self.vision):
            closer = getattr(model, "aclose", None)
            if closer is not None and id(model) not in seen:
                seen.add(id(model))
                await closer()
