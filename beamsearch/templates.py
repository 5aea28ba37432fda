"""Prompt templates: one plain text file per task with `[system]` and `[user]` sections and
`${name}` placeholders. Users may point `prompts_dir` at their own copies; any file missing there falls
back to the built-in one."""

from __future__ import annotations

import string
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from beamsearch.errors import SettingsError

TASKS = ("expand_what", "expand_how", "combine", "judge_alignment", "judge_aesthetic", "critique", "refine", "rephrase",
         "checklist", "judge_checklist", "judge_pairwise")


@dataclass(frozen=True)
class Template:
    name: str
    system: string.Template
    user: string.Template

    def render(self, variables: dict[str, Any]) -> tuple[str, str]:
        try:
            return self.system.substitute(variables).strip(), self.user.substitute(variables).strip()
        except KeyError as exc:
            raise SettingsError(f"The prompt template '{self.name}' uses the unknown placeholder ${{{exc.args[0]}}}.") from None


def parse_template(name: str, text: str, source: str | None = None) -> Template:
    """A template from its text; `source` names its file in errors. A `$` that starts no placeholder
    is refused here, when the templates load before any run folder is made, rather than in the middle of
    a run when the template is first rendered."""
    where = source or f"The prompt template '{name}'"
    sections: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        marker = line.strip().lower()
        if marker in ("[system]", "[user]"):
            current = marker[1:-1]
            sections[current] = []
        elif current is not None:
            sections[current].append(line)
    if "user" not in sections:
        raise SettingsError(f"{where} has no [user] section.")
    system, user = string.Template("\n".join(sections.get("system", []))), string.Template("\n".join(sections["user"]))
    for part in (system, user):
        if not part.is_valid():
            raise SettingsError(f"{where} has a '$' that starts no placeholder (write $$ for a dollar sign, "
                                f"${{name}} for a placeholder): {_stray_dollar(part.template)}.")
    return Template(name, system, user)


def _stray_dollar(text: str) -> str:
    """The line of the first `$` that string.Template cannot read, quoted, for the error message."""
    pattern = string.Template.pattern
    for match in pattern.finditer(text):
        if match.group("invalid") is not None:
            line = text.splitlines()[text.count("\n", 0, match.start("invalid"))]
            return repr(line.strip()[:80])
    return "?"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return "it is not UTF-8 text"
    return exc.strerror.lower() if isinstance(exc, OSError) and exc.strerror else str(exc)


class Templates:
    def __init__(self, prompts_dir: Path | None = None) -> None:
        self._templates: dict[str, Template] = {}
        try:
            if prompts_dir is not None and not Path(prompts_dir).is_dir():
                raise SettingsError(f"The prompts_dir {prompts_dir} is not a folder.")
        except OSError as exc:
            raise SettingsError(f"The prompts_dir {prompts_dir} cannot be read: {_reason(exc)}.") from None
        for task in TASKS:
            custom = Path(prompts_dir) / f"{task}.txt" if prompts_dir else None
            try:
                if custom is not None and custom.is_file():
                    text, source = custom.read_text(encoding="utf-8"), f"The prompt template {custom}"
                else:
                    text, source = resources.files("beamsearch.prompts").joinpath(f"{task}.txt").read_text(encoding="utf-8"), None
            except (OSError, UnicodeDecodeError) as exc:
                raise SettingsError(f"The prompt template {custom} cannot be read: {_reason(exc)}.") from None
            self._templates[task] = parse_template(task, text, source)

    def render(self, task: str, variables: dict[str, Any]) -> tuple[str, str]:
        return self._templates[task].render(variables)
