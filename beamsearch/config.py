"""Every setting in one pydantic model, loaded with precedence defaults < file < environment < flags.

Errors are turned into one sentence that names the key and the problem, because the person reading it
is at a terminal and wants to fix their YAML, not read a validation dump.
"""

from __future__ import annotations

import difflib
import functools
import math
import os
import re
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from beamsearch.errors import SettingsError
from beamsearch.sim_settings import SimSettings
from beamsearch.strict import Strict, _annotation_types

ENV_PREFIX = "BEAMSEARCH_"
ProviderName = Literal["sim", "openai"]
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
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
    api_key_env: str = "OPENAI_API_KEY"
    timeout: float = Field(60.0, gt=0)
    temperature: float | None = Field(None, ge=0, le=2)

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
        never repeat it in the message."""
        if looks_like_key(value):
            raise PydanticCustomError(SECRET_ERROR, "looks like an API key, not a variable name: it must name the "
                                      "environment variable that holds the key (like OPENAI_API_KEY), never the key "
                                      "itself")
        if not ENV_NAME.fullmatch(value):
            raise PydanticCustomError(SECRET_ERROR, "must name an environment variable (letters, digits and "
                                      "underscores, not starting with a digit), like OPENAI_API_KEY")
        return value


class ImageRoleSettings(RoleSettings):
    model: str = "gpt-image-2"
    timeout: float = Field(180.0, gt=0)
    size: str = "1024x1024"
    quality: str = "medium"
    max_download_bytes: int = Field(50_000_000, gt=0)


class VisionRoleSettings(RoleSettings):
    detail: Literal["low", "high", "auto"] = "low"
    vision_max_side: int | None = Field(768, gt=0)


class ServiceLimits(Strict):
    concurrency: int = Field(8, ge=1)
    rpm: float | None = Field(None, ge=1, description="requests started per minute (at least 1); none = unlimited")


SIM_LIMITS = {"concurrency": 256, "rpm": None}


class LimitsSettings(Strict):
    window_s: float = Field(10.0, gt=0, description="the sliding window over which each rpm is enforced")
    text: ServiceLimits = ServiceLimits(concurrency=16, rpm=500)
    image: ServiceLimits = ServiceLimits(concurrency=4, rpm=50)
    vision: ServiceLimits = ServiceLimits(concurrency=16, rpm=500)


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
    alignment: Literal["rating", "checklist"] = Field("rating", description="rating: one 0-100 score from the "
                                                      "judge; checklist: weighted yes/no questions made from the idea")
    ranking: Literal["scores", "pairwise"] = Field("scores", description="scores: by total; pairwise: finalists "
                                                   "compared two at a time in both orders")
    judge_samples: int = Field(1, ge=1, le=20, description="independent answers per judge and image, averaged")
    pairwise: PairwiseSettings = PairwiseSettings()
    provider: ProviderName = "openai"
    text: RoleSettings = RoleSettings(temperature=0.9)
    image: ImageRoleSettings = ImageRoleSettings()
    vision: VisionRoleSettings = VisionRoleSettings()
    limits: LimitsSettings = LimitsSettings()
    retries: RetrySettings = RetrySettings()
    sim: SimSettings = SimSettings()
    runs_dir: Path = Path("runs")
    seed: int = 0
    prompts_dir: Path | None = None
    prices: Path | None = Field(None, description="a YAML price table overriding the built-in one")
    max_cost_usd: float | None = Field(None, gt=0)

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
        for role in ("text", "image", "vision"):
            section = data.get(role) if isinstance(data.get(role), dict) else {}
            provider = section.get("provider") or data.get("provider") or "openai"
            if provider == "sim" and role not in limits:
                limits = {**limits, role: SIM_LIMITS}
        if limits:
            data = {**data, "limits": limits}
        # a partly given section keeps the defaults of the keys it does not name (image.concurrency
        # stays 4 when only image.rpm is set), rather than falling back to the generic class defaults
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


# --- loading --------------------------------------------------------------------------------------


def _all_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        keys.append(prefix + name)
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys.extend(_all_keys(annotation, prefix + name + "."))
    return keys


def _describe(error: dict[str, Any], model: type[BaseModel]) -> str:
    """One sentence for the first pydantic error."""
    loc = ".".join(str(p) for p in error.get("loc", ()))
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(loc, _all_keys(model), n=1, cutoff=0.5)
        if not close:
            tail = loc.rsplit(".", 1)[-1]
            close = [k for k in _all_keys(model) if k.rsplit(".", 1)[-1] in difflib.get_close_matches(
                tail, [k.rsplit(".", 1)[-1] for k in _all_keys(model)], n=1, cutoff=0.6)][:1]
        hint = f"; did you mean '{close[0]}'?" if close else "."
        return f"Unknown setting '{loc}'{hint}"
    message = str(error.get("msg", "is invalid"))
    message = message.removeprefix("Value error, ")
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        message = "must be a mapping of settings (key: value lines)"
    elif kind == "path_type":
        message = "must be a path"
    if not loc:
        return message[0].upper() + message[1:] + ("" if message.endswith(".") else ".")
    value = error.get("input")
    shown = "" if isinstance(value, dict | list) or kind == SECRET_ERROR else f" (got {value!r})"
    return f"Setting '{loc}' {message[0].lower() + message[1:]}{shown}."


def validate(data: dict[str, Any], sources: Mapping[str, str] | None = None) -> Settings:
    """The settings, or one sentence about the first problem (naming the environment variable it came
    from, when `sources` says so)."""
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        message = _describe(error, Settings)
        sources = sources or {}
        variable = sources.get(".".join(str(p) for p in error.get("loc", ())))
        if variable is None:  # a check across settings names its keys in the message itself
            variable = next((v for k, v in sources.items() if f"'{k}'" in message), None)
        if variable:
            message = f"{message.removesuffix('.')} (from the environment variable {variable})."
        raise SettingsError(message) from None


def load_yaml(path: Path) -> dict[str, Any]:
    """Read a settings file, or say in one sentence why it cannot be read."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SettingsError(f"The config file {path} does not exist.") from None
    except OSError as exc:
        raise SettingsError(f"The config file {path} cannot be read: {exc.strerror}.") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "it is not valid YAML"
        raise SettingsError(f"The config file {path} is not valid YAML{where}: {problem}.") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        what = "a list" if isinstance(data, list) else "a single value"
        raise SettingsError(f"The config file {path} must hold a mapping of settings (key: value lines), not {what}.")
    return data


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise SettingsError(f"Setting '{dotted}' cannot be set because '{part}' is not a section.")
    node[parts[-1]] = value


def from_environment(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """`BEAMSEARCH_N=12`, `BEAMSEARCH_LIMITS__IMAGE__RPM=20`: double underscores separate sections.
    Values are parsed as YAML scalars so numbers and booleans keep their types."""
    environ = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name in {"BEAMSEARCH_CONFIG"}:
            continue
        dotted = name[len(ENV_PREFIX):].lower().replace("__", ".")
        if _expects_text(dotted):  # BEAMSEARCH_PROMPT=yes is the word "yes", not true
            value: Any = raw if raw != "" else None
        else:
            try:
                value = yaml.safe_load(raw) if raw != "" else None
            except yaml.YAMLError:
                value = raw
        set_dotted(data, dotted, value)
    return data


def _expects_text(dotted: str) -> bool:
    """Is the setting at `dotted` a text (or a path), so that its environment value is taken as it is?"""
    model: Any = Settings
    annotation: Any = None
    for part in dotted.split("."):
        fields = getattr(model, "model_fields", None)
        if fields is None or part not in fields:
            return False
        annotation = fields[part].annotation
        model = next((t for t in _annotation_types(annotation) if isinstance(t, type) and issubclass(t, BaseModel)),
                     None)
    types = _annotation_types(annotation)
    return bool(types & {str, Path}) or all(isinstance(t, str) for t in types)


def environment_sources(environ: Mapping[str, str]) -> dict[str, str]:
    """Dotted setting -> the BEAMSEARCH_ variable it came from, so that errors can name the variable."""
    return {name[len(ENV_PREFIX):].lower().replace("__", "."): name for name in environ
            if name.startswith(ENV_PREFIX) and name != "BEAMSEARCH_CONFIG"}


def resolve(
    config_file: Path | None = None,
    flags: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
) -> Settings:
    """Defaults < config file < environment < flags. `flags` uses dotted keys and skips `None` values."""
    env = os.environ if environ is None else environ
    if config_file is None and env.get("BEAMSEARCH_CONFIG"):
        config_file = Path(env["BEAMSEARCH_CONFIG"])
    return validate(layered({}, config_file, env, flags), _unless_flagged(environment_sources(env), flags))


def layered(data: dict[str, Any], config_file: Path | None, env: Mapping[str, str],
            flags: dict[str, Any] | None) -> dict[str, Any]:
    """`data` < config file < environment < flags (dotted keys; `None` values skipped), not yet validated."""
    if config_file is not None:
        data = deep_merge(data, load_yaml(config_file))
    data = deep_merge(data, from_environment(env))
    for dotted, value in (flags or {}).items():
        if value is not None:
            set_dotted(data, dotted, value)
    return data


def _unless_flagged(sources: dict[str, str], flags: dict[str, Any] | None) -> dict[str, str]:
    """A flag overrides the environment: then the variable is not where the value came from."""
    return {k: v for k, v in sources.items() if (flags or {}).get(k) is None}


def to_yaml(settings: Settings) -> str:
    return yaml.safe_dump(settings.public_dict(), sort_keys=False, allow_unicode=True)


# --- resuming -------------------------------------------------------------------------------------

# Settings that shaped what is already recorded: changing them on resume would make the replayed past
# disagree with the log. Everything else (limits, budget, iterations, timeouts, retries) only shapes
# what has not happened yet.
PAST_KEYS = (
    "prompt", "n", "m", "alpha", "elitism", "seed", "provider",
    "text.provider", "text.model", "text.base_url", "image.provider", "image.model", "image.base_url",
    "image.size", "image.quality", "vision.provider", "vision.model", "vision.base_url", "vision.detail",
    "vision.vision_max_side", "sim.image_size", "sim.alignment_noise", "sim.aesthetic_noise",
    "alignment", "ranking", "judge_samples", "pairwise.finalists", "pairwise.max_pairs",
    "sim.checklist_noise", "sim.rating_saturation", "sim.pairwise_noise", "sim.pairwise_bias",
    "sim.judge_miss_rate", "sim.judge_hallucination_rate", "sim.weak_miss_rate", "sim.weak_false_rate",
    "sim.judge_persistence", "sim.colour_shade", "sim.colour_miss_rate", "sim.object_drop_rate", "sim.llm",
)


def get_dotted(data: dict[str, Any], dotted: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def resolve_for_resume(
    recorded: dict[str, Any],
    config_file: Path | None = None,
    flags: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
) -> Settings:
    """The recorded settings < config file < environment < flags, refusing changes to the past."""
    old = validate(recorded)
    env = os.environ if environ is None else environ
    sources = _unless_flagged(environment_sources(env), flags)
    new = validate(layered(old.public_dict(), config_file, env, flags), sources)
    before, after = old.public_dict(), new.public_dict()
    changed = [key for key in PAST_KEYS if get_dotted(before, key) != get_dotted(after, key)]
    if changed:
        names = ", ".join(f"'{key}'" + (f" (set by {sources[key]})" if key in sources else "") for key in changed)
        raise SettingsError(
            f"Resuming cannot change {names}: the recorded run was made with other values; "
            "start a new run to change them (limits, budget, iterations and timeouts may change)."
        )
    return new
