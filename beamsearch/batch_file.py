"""A file of ideas for `beamsearch batch`: read it, check it, and give each idea its settings.

Two shapes: a text file (one idea a line; lines starting with `#` and blank lines are skipped), or a
YAML / JSON list (by the file's extension) whose items are the idea's text or a mapping with `prompt` and
a few settings of its own (`IDEA_KEYS`). Every problem is one sentence naming the idea by its number and
line, because a person fixing a file of a hundred ideas needs to know which one to look at.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from beamsearch.config import Settings
from beamsearch.errors import SettingsError
from beamsearch.files import reason, shown
from beamsearch.precedence import set_dotted, validate

# What one idea may set for itself (file key -> settings key). Everything else (providers, models, limits,
# budget, folders) is shared by the batch: one set of limits and one budget serve every idea.
IDEA_KEYS = {
    "n": "n", "m": "m", "iterations": "iterations", "alpha": "alpha", "elitism": "elitism",
    "alignment": "alignment", "ranking": "ranking", "judge_samples": "judge_samples",
    "size": "image.size", "quality": "image.quality", "seed": "seed", "target_score": "target_score",
    "patience": "patience", "min_improvement": "min_improvement", "min_survivors": "min_survivors",
}
STRUCTURED = (".yaml", ".yml", ".json")
MAX_IDEA_CHARS = 4000


@dataclass
class IdeaSpec:
    """One idea as the file gave it: its number (1-based), line, text and own settings (settings keys)."""

    number: int
    line: int
    prompt: str
    settings: dict[str, Any] = field(default_factory=dict)

    def where(self, source: str) -> str:
        line = f" (line {self.line})" if self.line else ""
        return f"Idea {self.number}{line} of {source}"

    def to_record(self) -> dict[str, Any]:
        """How batch.yaml keeps it."""
        return {"prompt": self.prompt, "line": self.line, "settings": dict(self.settings)}

    @classmethod
    def from_record(cls, number: int, record: Any, source: str) -> IdeaSpec:
        """An idea read back from batch.yaml (untrusted data: checked like the file it came from)."""
        if not isinstance(record, dict) or not isinstance(record.get("prompt"), str):
            raise SettingsError(f"Idea {number} of {source} has no prompt.")
        line = record.get("line") if isinstance(record.get("line"), int) else 0
        own = record.get("settings") or {}
        if not isinstance(own, dict) or any(key not in IDEA_KEYS.values() for key in own):
            raise SettingsError(f"Idea {number} of {source} has settings an idea may not set.")
        return cls(number, line, _checked_prompt(record["prompt"], f"Idea {number} of {source}"), dict(own))


def _checked_prompt(text: str, where: str) -> str:
    cleaned = " ".join(text.split())
    if not cleaned:
        raise SettingsError(f"{where} is empty.")
    if len(cleaned) > MAX_IDEA_CHARS:
        raise SettingsError(f"{where} is {len(cleaned)} characters long; an idea may have at most {MAX_IDEA_CHARS}.")
    return cleaned


def read_ideas(path: Path) -> list[IdeaSpec]:
    """Every idea of the file, checked, or one sentence saying what is wrong and where."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SettingsError(f"The ideas file {shown(path)} does not exist.") from None
    except (OSError, ValueError) as exc:
        raise SettingsError(f"The ideas file {shown(path)} cannot be read: {reason(exc)}.") from None
    ideas = _structured(text, path) if path.suffix.lower() in STRUCTURED else _lines(text, path)
    if not ideas:
        raise SettingsError(f"The ideas file {shown(path)} holds no ideas (one idea a line; # starts a comment).")
    return ideas


def _lines(text: str, path: Path) -> list[IdeaSpec]:
    ideas = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            number = len(ideas) + 1
            ideas.append(IdeaSpec(number, line_number, _checked_prompt(stripped, f"Idea {number} (line {line_number}) "
                                                                                 f"of {path.name}")))
    return ideas


def _structured(text: str, path: Path) -> list[IdeaSpec]:
    """A YAML (or JSON) list. Its nodes are composed first, for the line of every item."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise SettingsError(f"The ideas file {shown(path)} is not valid YAML or JSON{where}.") from None
    if data is None:
        return []
    if not isinstance(data, list) or not isinstance(root, yaml.SequenceNode):
        raise SettingsError(f"The ideas file {shown(path)} must hold a list of ideas (each a text, or a mapping with "
                            "a 'prompt'), not a single value or a mapping.")
    return [_item(number, node.start_mark.line + 1, item, path.name)
            for number, (node, item) in enumerate(zip(root.value, data, strict=True), start=1)]


def _item(number: int, line: int, item: Any, source: str) -> IdeaSpec:
    where = f"Idea {number} (line {line}) of {source}"
    if isinstance(item, str):
        return IdeaSpec(number, line, _checked_prompt(item, where))
    if not isinstance(item, dict):
        raise SettingsError(f"{where} must be a text or a mapping with a 'prompt', not {_kind(item)} "
                            "(quote an idea that YAML reads as a number or a yes/no).")
    unknown = [str(key) for key in item if key not in IDEA_KEYS and key != "prompt"]
    if unknown:
        raise SettingsError(f"{where} has an unknown setting '{unknown[0]}'; an idea may set prompt, "
                            f"{', '.join(IDEA_KEYS)}.")
    if not isinstance(item.get("prompt"), str):
        raise SettingsError(f"{where} needs a 'prompt' that is text.")
    own = {IDEA_KEYS[key]: value for key, value in item.items() if key != "prompt"}
    return IdeaSpec(number, line, _checked_prompt(item["prompt"], where), own)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a yes/no"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "a list"
    return "an empty item" if value is None else type(value).__name__


def checked_settings(shared: Settings, ideas: list[IdeaSpec], source: str) -> list[Settings]:
    """Every idea's settings checked, one validation per distinct set of own settings: ideas with the same
    own settings share one object (its prompt is the first such idea's), so checking ten thousand ideas
    neither takes long nor stays in memory. A run's settings are made when its idea starts (`idea_settings`)."""
    import json

    made: dict[str, Settings] = {}
    shared_by_idea = []
    for idea in ideas:
        key = json.dumps(idea.settings, sort_keys=True, default=str)
        if key not in made:
            made[key] = idea_settings(shared, idea, source)
        shared_by_idea.append(made[key])
    return shared_by_idea


def idea_settings(shared: Settings, idea: IdeaSpec, source: str) -> Settings:
    """The batch's shared settings, then the idea's own (they win), with its prompt; checked, and named
    by the idea when they are wrong."""
    data = shared.public_dict()
    for key, value in idea.settings.items():
        set_dotted(data, key, value)
    data["prompt"] = idea.prompt
    try:
        return validate(data)
    except SettingsError as exc:
        raise SettingsError(f"{idea.where(source)}: {exc.message}") from None
