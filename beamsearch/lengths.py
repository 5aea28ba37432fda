"""How long each task's answer may be: the tokens a task may use, the words a plain answer is asked for,
and the rule that turns a plain answer that runs past its asked length into one that does not.

Why a rule and not a retry: small local models often never emit an end token (a base model without a
chat template writes on until `max_tokens`, and writes the template's markers as text), so a plain
answer cut off by the length limit is the usual case there, not an accident; retrying it would only
make another one like it. What matters is whether the answer holds a usable WHAT, HOW or prompt. So a
plain answer is read like this (`plain_answer`):

1. Everything from the first chat-template marker on (`<|im_end|>`, `<end_of_turn>`, `</s>`, ...) is
   dropped: the model meant to end its turn there.
2. A complete answer (not cut off) within its asked length, with a quarter to spare, is taken as it is.
3. Otherwise it is trimmed to its whole units within the asked length: sentences for prose (a WHAT, a
   combined prompt), comma-separated parts of the first line for a HOW. An answer cut off by the length
   limit loses its last, unfinished unit. The result is marked `trimmed` in the step's meta.
4. An answer with no whole unit (of at least two words) within the length holds nothing usable: it is
   an invalid answer (`AnswerCutOff` when the length limit cut it), retried with the reason.

Structured (JSON) answers cut off by the length limit are always invalid: half an object is no answer.
When a cut left nothing at all (a reasoning model that spent its tokens thinking) or cut a JSON answer,
the retry may use more tokens (`grown`); a rambling plain answer is retried with the same limit.

The per-task token defaults live here (`TOKEN_DEFAULTS`); a role's `max_output_tokens` setting overrides
them with one number for all its tasks, or per task (`{expand: 200, checklist: 1500}`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from beamsearch.errors import AnswerCutOff, InvalidAnswer

# Tokens of answer each task may use by default (`max_completion_tokens` as sent, before any room a
# reasoning model is found to need). Plain answers are short by design: 80 words are about 110 tokens.
TOKEN_DEFAULTS: dict[str, int] = {
    "expand": 200, "refine": 200, "combine": 250, "rephrase": 250, "critique": 600, "checklist": 1500,
    "judge_alignment": 500, "judge_aesthetic": 400, "judge_checklist": 1000, "judge_pairwise": 300,
}
TASKS_OF_ROLE: dict[str, tuple[str, ...]] = {
    "text": ("expand", "combine", "critique", "refine", "checklist", "rephrase"),
    "vision": ("judge_alignment", "judge_aesthetic", "judge_checklist", "judge_pairwise"),
}
MAX_GROWTH = 4  # a retry after a cut may ask for up to this many times the task's tokens
TOLERANCE = 1.25  # a complete answer may run this far past its asked length and be taken as it is
MIN_WORDS = 2  # a trimmed answer shorter than this holds nothing usable

Form = Literal["prose", "line"]


@dataclass(frozen=True)
class Asked:
    """The length a plain answer is asked for, in words, and its form: prose (whole sentences) or one
    comma-separated line (whole parts)."""

    words: int
    form: Form


ASKED: dict[str, Asked] = {"what": Asked(80, "prose"), "how": Asked(40, "line"), "prompt": Asked(120, "prose")}

CONTROL = re.compile(r"<\|[A-Za-z_]+\|>|<(?:start|end)_of_turn>|</s>|<eos>|\[/?INST\]")
SENTENCE = re.compile(r"(?<=[.!?])[\"')\]]*\s+")
LABELS = ("WHAT:", "HOW:", "Prompt:", "PROMPT:")


def family(task: str) -> str:
    """The setting's name for a task: `expand_what` and `expand_how` are both `expand`."""
    return "expand" if task.startswith("expand_") else task


def max_tokens(setting: int | dict[str, int] | None, task: str) -> int:
    """A task's token limit from its role's `max_output_tokens` (one number, per task, or unset)."""
    if isinstance(setting, int):
        return setting
    name = family(task)
    if isinstance(setting, dict) and name in setting:
        return int(setting[name])
    return TOKEN_DEFAULTS[name]


def grown(tokens: int, base: int) -> int:
    """The token limit of the retry after a cut that more tokens may fix."""
    return min(tokens * 2, base * MAX_GROWTH)


@dataclass(frozen=True)
class Plain:
    text: str
    trimmed: dict[str, Any] | None = None  # for the step's meta: {"words": as answered, "kept": words kept}


def clean_text(text: str | None, what: str) -> str:
    """A free-text answer with quotes and a leading label removed; empty is invalid."""
    cleaned = (text or "").strip().strip('"').strip()
    for label in LABELS:
        if cleaned.startswith(label):
            cleaned = cleaned[len(label):].strip()
    if not cleaned:
        raise InvalidAnswer(f"the {what} answer is empty")
    return cleaned


def words_in(text: str) -> int:
    return len(text.split())


def plain_answer(text: str | None, asked: Asked | None, cut: bool, task: str) -> Plain:
    """The usable part of a plain answer by the rule above, or an InvalidAnswer saying why there is none."""
    whole = cleaned = clean_text(text, task)
    marker = CONTROL.search(cleaned)
    complete = not cut
    if marker is not None:
        complete = True  # the model ended its turn there, whatever came after
        cleaned = cleaned[: marker.start()].strip().strip('"').strip()
        if not cleaned:
            raise InvalidAnswer(f"the {task} answer is empty (it ends at a chat-template marker)")
    said = words_in(cleaned)
    if complete and (asked is None or said <= asked.words * TOLERANCE):
        return Plain(cleaned, {"words": words_in(whole), "kept": said} if marker else None)
    if asked is None:
        raise AnswerCutOff(f"the {task} answer was cut off at the length limit", grow=False)
    kept = _whole_units(cleaned, asked, complete)
    if words_in(kept) < MIN_WORDS:
        unit = "sentence" if asked.form == "prose" else "part"
        if complete:
            raise InvalidAnswer(f"the {task} answer runs past its {asked.words} words ({said} words) and has no "
                                f"whole {unit} of at most {asked.words} words to keep")
        raise AnswerCutOff(f"the {task} answer was cut off at the length limit ({said} words) and has no whole "
                           f"{unit} of at most {asked.words} words to keep", grow=False)
    return Plain(kept, {"words": said, "kept": words_in(kept)})


def _whole_units(text: str, asked: Asked, complete: bool) -> str:
    """The answer's leading whole units within `asked.words`; an unfinished last unit is left out."""
    if asked.form == "line":
        lines = [part for part in text.split("\n") if part.strip()]
        units = [u.strip() for u in lines[0].split(",") if u.strip()]
        finished = complete or len(lines) > 1
        joiner = ", "
    else:
        units = [s.strip() for part in text.split("\n") for s in SENTENCE.split(part) if s.strip()]
        finished = complete or bool(re.search(r"[.!?][\"')\]]*$", text))
        joiner = " "
    if not finished:
        units = units[:-1]
    kept: list[str] = []
    total = 0
    for unit in units:
        total += words_in(unit)
        if total > asked.words:
            break
        kept.append(unit)
    return joiner.join(kept)
