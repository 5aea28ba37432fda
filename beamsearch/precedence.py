"""Where settings come from: built-in defaults < config file < environment < flags, and on resume the
recorded settings < the user's own file, environment and flags, with the past kept as it was.

Errors are turned into one sentence that names the key and the problem (and the `BEAMSEARCH_` variable
it came from), because the person reading it is at a terminal and wants to fix their YAML, not read a
validation dump.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from beamsearch.config import ENV_PREFIX, SECRET_ERROR, Settings, deep_merge
from beamsearch.errors import SettingsError
from beamsearch.strict import _annotation_types

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
    """The settings as YAML (what `beamsearch config` prints); an unset budget says what it comes to."""
    text = yaml.safe_dump(settings.public_dict(), sort_keys=False, allow_unicode=True)
    if settings.max_cost_usd is None:
        budget = settings.budget_usd()
        meaning = (f"the default budget, ${budget:.2f} (paid providers); --max-cost none lifts it" if budget is not None
                   else "no budget: the simulator pays nothing")
        text = text.replace("\nmax_cost_usd: null\n", f"\nmax_cost_usd: null  # {meaning}\n")
    return text


# --- resuming -------------------------------------------------------------------------------------

# Settings that shaped what is already recorded: changing them on resume would make the replayed past
# disagree with the log. Everything else (limits, budget, iterations, timeouts, retries) only shapes
# what has not happened yet. Endpoints and key variables are not among them: on resume they come from
# the user's own settings, never from the folder (`endpoints`).
PAST_KEYS = (
    "prompt", "n", "m", "alpha", "elitism", "seed", "provider",
    "text.provider", "text.model", "image.provider", "image.model",
    "image.size", "image.quality", "vision.provider", "vision.model", "vision.detail",
    "vision.vision_max_side", "sim.image_size", "sim.alignment_noise", "sim.aesthetic_noise",
    "alignment", "ranking", "judge_samples", "pairwise.finalists", "pairwise.max_pairs",
    "sim.checklist_noise", "sim.rating_saturation", "sim.pairwise_noise", "sim.pairwise_bias",
    "refine", "variants", "rejudge",
    "sim.judge_miss_rate", "sim.judge_hallucination_rate", "sim.weak_miss_rate", "sim.weak_false_rate",
    "sim.judge_persistence", "sim.colour_shade", "sim.colour_miss_rate", "sim.object_drop_rate", "sim.llm",
)
# What a past-shaping setting that a run's recorded settings do not name was when that run was made:
# runs from before the setting existed resume as they were shaped, not under the new default.
LEGACY_VALUES: dict[str, Any] = {"variants": None, "rejudge": False, "refine": "alternate"}
# Settings a resume takes from the user alone: where calls and keys go, and the prices the budget uses.
USER_KEYS = ("prices",)


def get_dotted(data: dict[str, Any], dotted: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def shaping(settings: Settings | dict[str, Any]) -> dict[str, Any]:
    """The past-shaping settings' values (what `run_started` records, so an edited run.yaml is caught)."""
    data = settings.public_dict() if isinstance(settings, Settings) else settings
    return {key: get_dotted(data, key) for key in PAST_KEYS}


def resolve_for_resume(
    recorded: dict[str, Any],
    config_file: Path | None = None,
    flags: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
    trust_endpoints: bool = False,
) -> Settings:
    """The recorded settings < config file < environment < flags, refusing changes to the past; endpoints,
    key variables and prices from the user's own settings alone (see `endpoints`)."""
    from beamsearch.endpoints import user_endpoints

    recorded = {**{k: v for k, v in LEGACY_VALUES.items() if k not in recorded}, **recorded}
    old = validate(recorded)
    env = os.environ if environ is None else environ
    sources = _unless_flagged(environment_sources(env), flags)
    user = layered({}, config_file, env, flags)
    data = layered(old.public_dict(), config_file, env, flags)
    for role, chosen in user_endpoints(old.public_dict(), user, trust_endpoints).items():
        data[role].update(chosen)
    for key in USER_KEYS:
        set_dotted(data, key, get_dotted(user, key))
    new = validate(data, sources)
    before, after = old.public_dict(), new.public_dict()
    changed = [key for key in PAST_KEYS if get_dotted(before, key) != get_dotted(after, key)]
    if changed:
        names = ", ".join(f"'{key}'" + (f" (set by {sources[key]})" if key in sources else "") for key in changed)
        raise SettingsError(
            f"Resuming cannot change {names}: the recorded run was made with other values; "
            "start a new run to change them (limits, budget, iterations and timeouts may change)."
        )
    return new
