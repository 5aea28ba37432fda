"""Every setting in one pydantic model, with its defaults and its checks (loading them: `precedence`).

Errors are turned into one sentence that names the key and the problem, because the person reading it
is at a terminal and wants to fix their YAML, not read a validation dump.
"""

from __future__ import annotations

import functools
import math
import re
import urllib.parse
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from beamsearch.choices import AlignmentMethod, ProviderName, RankingMethod
from beamsearch.endpoints import NO_KEY
from beamsearch.lengths import TASKS_OF_ROLE
from beamsearch.roles import ROLES
from beamsearch.sim_settings import SimSettings
from beamsearch.strict import Strict

ENV_PREFIX = "BEAMSEARCH_"
DEFAULT_BUDGET_USD = 2.50  # the budget of a run with a paid provider unless the user sets one or lifts it
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MIN_TOKENS = 16  # fewer tokens than this cannot hold any answer a task asks for
SECRET_ERROR = "api_key_env"  # the kind of error whose input must never be shown: it may be a real key


def looks_like_key(value: str) -> bool:
    """Whether an `api_key_env` value is more likely a key than a variable's name: a key prefix, or long
    and random (variable names are words joined by underscores; keys are high-entropy strings)."""
    if value.lower().startswith(("sk-", "sk_", "gsk_", "xai-", "key-")):
        return True
    counts = {c: value.count(c) for c in set(value)}
    entropy = -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values()) if value else 0.0
    if len(value) >= 20 and entropy >= 4.3:
        return True
    return len(value) >= 24 and "_" not in value and any(c.isdigit() for c in value) and any(c.isalpha() for c in value)


class RoleSettings(Strict):
    """Who serves one role (text, image or vision)."""

    provider: ProviderName | None = Field(None, description="overrides the top-level provider for this role")
    model: str = "gpt-5.4-mini"
    base_url: str | None = None
    api_key_env: str = Field("OPENAI_API_KEY", description="the environment variable holding the key; none for a "
                             "server without keys (no key is sent; an unset variable on a loopback endpoint sends none too)")
    timeout: float = Field(60.0, gt=0)
    temperature: float | None = Field(None, ge=0, le=2)
    latency_s: float | None = Field(None, gt=0, description="typical seconds of one call, for `estimate`; unset = "
                                    "measured in an earlier run with this model and endpoint, else a hosted "
                                    "service's typical figure")

    @field_validator("base_url")
    @classmethod
    def _an_http_url(cls, value: str | None) -> str | None:
        """Caught here, a typo costs one sentence; caught by the HTTP client, it costs a run folder."""
        if value is None:
            return value
        problem = "must be an http or https URL like http://127.0.0.1:8000/v1"
        try:
            parts = urllib.parse.urlsplit(value)
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number in 0-65535
        except ValueError:
            raise PydanticCustomError("url", problem + " (its host or port is not valid)") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PydanticCustomError("url", problem)
        return value

    @field_validator("api_key_env")
    @classmethod
    def _a_variable_name(cls, value: str) -> str:
        """The key itself pasted here would be written to run.yaml and shown by `config`: refuse it, and
        never repeat it in the message. `none` says the server needs no key (none is sent)."""
        if isinstance(value, str) and value.strip().lower() == NO_KEY:
            return NO_KEY
        if looks_like_key(value):
            raise PydanticCustomError(SECRET_ERROR, "looks like an API key, not a variable name: it must name the "
                                      "environment variable that holds the key (like OPENAI_API_KEY), never the key "
                                      "itself")
        if not ENV_NAME.fullmatch(value):
            raise PydanticCustomError(SECRET_ERROR, "must name an environment variable (letters, digits and "
                                      "underscores, not starting with a digit), like OPENAI_API_KEY, or be none "
                                      "for a server without keys")
        return value


class ChatRoleSettings(RoleSettings):
    """A role that answers in text (text and vision): how long each task's answer may be."""

    TASKS: ClassVar[tuple[str, ...]] = TASKS_OF_ROLE["text"]
    max_output_tokens: int | dict[str, int] | None = Field(
        None, description="the most tokens one answer may use: one number for every task of the role, or per task "
        "(e.g. {expand: 200, checklist: 1500}); unset = each task's default (beamsearch/lengths.py)")

    @field_validator("max_output_tokens", mode="before")
    @classmethod
    def _tokens(cls, value: Any) -> Any:
        """A whole number of tokens (at least 16), or a mapping of this role's task names to such numbers."""
        def number(tokens: Any, where: str) -> int:
            if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < MIN_TOKENS:
                raise PydanticCustomError("tokens", f"{where}must be a whole number of tokens, at least {MIN_TOKENS}")
            return tokens

        if value is None or not isinstance(value, dict):
            return value if value is None else number(value, "")
        unknown = [str(task) for task in value if task not in cls.TASKS]
        if unknown:
            raise PydanticCustomError("tokens", f"names a task this role does not answer ('{unknown[0]}'); its "
                                      f"tasks are {', '.join(cls.TASKS)}")
        return {str(task): number(tokens, f"'{task}' ") for task, tokens in value.items()}


class ImageRoleSettings(RoleSettings):
    model: str = "gpt-image-2"
    timeout: float = Field(180.0, gt=0)
    size: str = "1024x1024"
    quality: str = "medium"
    max_download_bytes: int = Field(50_000_000, gt=0, description="the most bytes one image answer may hold, "
                                    "sent as base64 or downloaded from a URL")
    max_pixels: int = Field(16_777_216, gt=0, description="the most pixels (width x height) an image may have; "
                            "larger ones are refused before they are decoded")


class VisionRoleSettings(ChatRoleSettings):
    TASKS: ClassVar[tuple[str, ...]] = TASKS_OF_ROLE["vision"]
    detail: Literal["low", "high", "auto"] = "low"
    vision_max_side: int | None = Field(768, gt=0)


class ServiceLimits(Strict):
    concurrency: int = Field(8, ge=1)
    rpm: float | None = Field(None, ge=1, description="requests started per minute (at least 1); none = unlimited")


SIM_LIMITS = {"concurrency": 256, "rpm": None}


# Providers limit rate, not concurrency, so the defaults let every lane of an iteration be in flight
# (N=9 makes 18 text calls at once when it expands, 9 images, 18 judge calls) and enforce each rpm over a
# whole minute: the limiter lets `rpm * window_s / 60` calls start within any `window_s`, so a 60 s window
# admits a minute's budget (50 images) at once, where a 10 s window would hold them to 8 per 10 s and
# split an iteration's images into waves. The server's x-ratelimit-* headers and 429s can only slow it.
#
# OpenAI's published image limits by usage tier (gpt-image-1, images per minute, at the time of writing;
# they change, and your organisation's limits page says what your key has): tier 1: 5, tier 2: 20,
# tier 3: 50, tier 4: 150, tier 5: 250. The default image rpm (50) is tier 3's: set
# `limits.image.rpm` to your tier's figure. Text and vision models allow 500 rpm or more from tier 1.
class LimitsSettings(Strict):
    window_s: float = Field(60.0, gt=0, description="the sliding window over which each rpm is enforced: a "
                            "window of 60 s lets a minute's budget start at once, shorter ones spread it out")
    text: ServiceLimits = ServiceLimits(concurrency=64, rpm=500)
    image: ServiceLimits = ServiceLimits(concurrency=50, rpm=50)
    vision: ServiceLimits = ServiceLimits(concurrency=64, rpm=500)


class RetrySettings(Strict):
    max_attempts: int = Field(5, ge=1, le=50)
    backoff_initial: float = Field(1.0, ge=0)
    backoff_max: float = Field(60.0, ge=0)
    max_rephrases: int = Field(2, ge=0, le=10)


class PairwiseSettings(Strict):
    """How many pairwise comparisons a ranking may make (see beamsearch/judging.py for the method)."""

    finalists: int | None = Field(None, ge=2, description="candidates of the score order compared in pairs; "
                                  "none = max(4, 2*m), never more than the pool")
    max_pairs: int | None = Field(None, ge=1, description="at most this many pairs per ranking, 2 vision calls "
                                  "each; none = every pair of finalists not implied by transitivity")


class Settings(Strict):
    """All settings of a run. `prompt` is the user's idea; the rest shape the search."""

    prompt: str | None = None
    n: int = Field(9, description="beam width: candidates per iteration")
    m: int = Field(3, description="survivors kept after each ranking")
    iterations: int = Field(4, description="iterations, counting iteration 0")
    alpha: float = Field(0.7, description="weight of alignment in the total score")
    elitism: bool = True
    target_score: float | None = Field(None, ge=0, le=100)
    patience: int | None = Field(None, ge=1)
    min_improvement: float = Field(0.5, ge=0)
    min_survivors: int = Field(1, ge=1)
    alignment: AlignmentMethod = Field("rating", description="rating: one 0-100 score from the "
                                                      "judge; checklist: weighted yes/no questions made from the idea")
    ranking: RankingMethod = Field("scores", description="scores: by total; pairwise: finalists "
                                                   "compared two at a time in both orders")
    judge_samples: int = Field(1, ge=1, le=20, description="independent answers per judge and image, averaged")
    pairwise: PairwiseSettings = PairwiseSettings()
    refine: Literal["alternate", "both", "weakest"] = Field(
        "alternate", description="what each refinement iteration refines: alternate (odd WHAT, even HOW, the seed's "
        "algorithm), both, or weakest (the dimension the parent's judges rated relatively lower)")
    variants: int | None = Field(2, ge=0, le=10, description="how many times a refinement that repeats a prompt "
                                 "already made in the run is asked again for another variant before its lane is "
                                 "skipped unrendered; none = no check (repeats are rendered and paid for)")
    rejudge: bool = Field(True, description="judge kept parents again at the next ranking, and the final survivors "
                          "once more, so a lucky first score does not win by staying (2 vision calls each)")
    provider: ProviderName = "openai"
    text: ChatRoleSettings = ChatRoleSettings(temperature=0.9)
    image: ImageRoleSettings = ImageRoleSettings()
    vision: VisionRoleSettings = VisionRoleSettings()
    limits: LimitsSettings = LimitsSettings()
    retries: RetrySettings = RetrySettings()
    sim: SimSettings = SimSettings()
    runs_dir: Path = Path("runs")
    seed: int = 0
    prompts_dir: Path | None = None
    prices: Path | None = Field(None, description="a YAML price table overriding the built-in one")
    max_cost_usd: float | Literal["none"] | None = Field(
        None, description=f"stop before spending more dollars than this; none = no budget; unset = ${DEFAULT_BUDGET_USD:.2f} "
        "when any role is served by a paid provider")

    @field_validator("max_cost_usd", mode="before")
    @classmethod
    def _dollars_or_none(cls, value: Any) -> Any:
        """A number of dollars above 0, or `none` to lift the budget (`--max-cost none`); left unset, the
        default budget applies to paid providers."""
        if isinstance(value, str):
            word = value.strip().lower()
            if word == "none":
                return "none"
            try:
                value = float(word)
            except ValueError:
                raise PydanticCustomError("dollars", "must be a number of dollars above 0, or none for no budget") from None
        if isinstance(value, int | float) and not isinstance(value, bool) and not (math.isfinite(value) and value > 0):
            raise PydanticCustomError("dollars", "must be a number of dollars above 0, or none for no budget")
        return value

    @field_validator("runs_dir", mode="before")
    @classmethod
    def _a_folder(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            raise PydanticCustomError("empty_path", "must name a folder (it is empty)")
        return value

    @model_validator(mode="before")
    @classmethod
    def _simulator_limits(cls, data: Any) -> Any:
        """A service served by the simulator has no real rate limit: unless the user set limits for it,
        let it run wide open instead of inheriting the cautious defaults meant for a paid API."""
        if not isinstance(data, dict):
            return data
        limits = data.get("limits") if isinstance(data.get("limits"), dict) else {}
        for role in ROLES:
            section = data.get(role) if isinstance(data.get(role), dict) else {}
            provider = section.get("provider") or data.get("provider") or "openai"
            if provider == "sim" and role not in limits:
                limits = {**limits, role: SIM_LIMITS}
        if limits:
            data = {**data, "limits": limits}
        # a partly given section keeps the defaults of the keys it does not name (image.concurrency
        # stays 50 when only image.rpm is set), rather than falling back to the generic class defaults
        return deep_merge(_default_tree(), data)

    @model_validator(mode="after")
    def _check_search_shape(self) -> Settings:
        if self.n < 1:
            raise ValueError(f"Setting 'n' must be at least 1 (it is the number of candidates per iteration), not {self.n}")
        if self.m < 1:
            raise ValueError(f"Setting 'm' must be at least 1 (it is the number of survivors per iteration), not {self.m}")
        if self.m > self.n:
            raise ValueError(f"Setting 'm' ({self.m}) cannot be larger than 'n' ({self.n}): you cannot keep more survivors than candidates")
        if not 0 <= self.alpha <= 1:
            raise ValueError(f"Setting 'alpha' must be between 0 and 1, not {self.alpha}")
        if self.iterations < 1:
            raise ValueError(f"Setting 'iterations' must be at least 1 (iteration 0 counts), not {self.iterations}")
        if self.min_survivors > self.n:
            raise ValueError(f"Setting 'min_survivors' ({self.min_survivors}) cannot be larger than 'n' ({self.n})")
        return self

    def paid_roles(self) -> list[str]:
        """The roles served by a real (paid) provider, not the simulator."""
        return [role for role in ROLES if self.role_provider(role) != "sim"]

    def budget_usd(self) -> float | None:
        """The budget the run keeps: the one set, none when lifted (`none`), else the default budget
        for a run that pays for any of its roles (a simulated run pays nothing, so it has none)."""
        if self.max_cost_usd == "none":
            return None
        if self.max_cost_usd is not None:
            return float(self.max_cost_usd)
        return DEFAULT_BUDGET_USD if self.paid_roles() else None

    @property
    def budget_is_default(self) -> bool:
        """True when the budget is the built-in default (not set by the user, not lifted)."""
        return self.max_cost_usd is None and self.budget_usd() is not None

    def role_provider(self, role: str) -> str:
        """The provider that serves `role`: the role's own choice, else the top-level one."""
        chosen = getattr(self, role).provider
        return chosen or self.provider

    def public_dict(self) -> dict[str, Any]:
        """Settings as plain data for run.yaml and `beamsearch config`. Holds no secret by construction:
        keys are never settings, only the names of the variables they come from."""
        return self.model_dump(mode="json")


@functools.cache
def _default_tree() -> dict[str, Any]:
    return Settings.model_construct().model_dump()


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged
