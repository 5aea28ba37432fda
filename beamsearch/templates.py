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


def parse_template(name: str, text: str) -> Template:
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
        raise SettingsError(f"The prompt template '{name}' has no [user] section.")
    return Template(name, string.Template("\n".join(sections.get("system", []))), string.Template("\n".join(sections["user"])))


class Templates:
    def __init__(self, prompts_dir: Path | None = None) -> None:
        self._templates: dict[str, Template] = {}
        if prompts_dir is not None and not Path(prompts_dir).is_dir():
            raise SettingsError(f"The prompts_dir {prompts_dir} is not a folder.")
        for task in TASKS:
            custom = Path(prompts_dir) / f"{task}.txt" if prompts_dir else None
            if custom is not None and custom.is_file():
                text = custom.read_text(encoding="utf-8")
            else:
                text = resources.files("beamsearch.prompts").joinpath(f"{task}.txt").read_text(encoding="utf-8")
            self._templates[task] = parse_template(task, text)

    def render(self, task: str, variables: dict[str, Any]) -> tuple[str, str]:
        return self._templates[task].render(variables)
