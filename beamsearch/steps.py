"""One function per model task. Each says what its task asks and how its answer is read; one path
(`Steps.ask`) renders the template, builds the request, parses and checks the answer and passes the
call through the gate, so the engine deals only in plain values.

Step keys are stable names of the work (`i0/c03/expand_what`, `i1/p-i0c02/critique`): the same search
always asks the same keys, which is what lets resume answer them from the log. Each step also records
a fingerprint of its inputs (`inputs_of`), so a recorded answer to other inputs is asked again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import BaseModel

from beamsearch.errors import AnswerCutOff, CallError, paid
from beamsearch.events import CHECKLIST_KEY
from beamsearch.gate import Gate, StepAnswer
from beamsearch.images import Rendered, RenderSteps
from beamsearch.lengths import ASKED, Asked, grown, max_tokens, plain_answer
from beamsearch.providers.base import Providers, TextRequest, TextResult, VisionRequest
from beamsearch.schemas import (
    AestheticAnswer,
    AlignmentAnswer,
    ChecklistAnswer,
    ChecklistJudgeAnswer,
    CritiqueAnswer,
    PairwiseAnswer,
    parse_answer,
    strict_json_schema,
)
from beamsearch.stepkeys import inputs_of, key_of, sample_key
from beamsearch.store import RunStore
from beamsearch.templates import Templates
from beamsearch.vision_inputs import vision_policy

__all__ = ["Critique", "Judgement", "Rendered", "Steps", "inputs_of", "key_of"]

DIMENSIONS = {
    "what": ("WHAT (content)", "Change only the content: subjects, objects, colours, counts, actions, setting. Never style.",
             "one paragraph"),
    "how": ("HOW (style)", "Change only the style: lighting, composition, palette, medium, mood. Never add or remove content.",
            "one comma-separated line"),
    "both": ("WHAT (content) and HOW (style)", "Say what to change in the content and what in the style.", ""),
}
# Template text that is shown only when it says something; when empty it is not part of what a step is
# asked (so runs made before it existed keep their fingerprints).
TEMPLATE_DEFAULTS = {"variety": ""}


def variety(variant: int | None, siblings: int, avoid: list[str]) -> str:
    """What makes a lane's answer differ from its siblings' and from texts already taken."""
    lines = []
    if variant is not None and siblings > 1:
        lines.append(f"This is variant {variant + 1} of {siblings} for this parent: make it differ from the others.")
    if avoid:
        lines.append("These versions are taken already; write one that differs from each of them:")
        lines += [f"- {text}" for text in avoid]
    return "\n".join(lines)


@dataclass
class Judgement:
    score: float
    notes: str
    found: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    weak: list[str] = field(default_factory=list)


@dataclass
class Critique:
    text: str
    suggestions: list[str]


@dataclass(frozen=True)
class Task:
    """One ask of a text or vision model: which template, which answer, and how to check it.

    `answer` is the pydantic model a structured answer must fit (None: free text); `check` validates
    what the model alone cannot (a checklist's dependencies), raising InvalidAnswer to retry; `view` is
    what an offline provider reads instead of the prose (the simulator cannot read English); `asked` is
    the length a plain answer is asked for and trimmed to (`beamsearch.lengths`)."""

    key: str
    task: str
    variables: dict[str, Any]
    template: str = ""
    answer: type[BaseModel] | None = None
    check: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    images: tuple[str, ...] = ()
    temperature: float | None = None
    view: dict[str, Any] | None = None
    asked: Asked | None = None  # a plain answer's asked length (shown to the model as ${words})


class Steps(RenderSteps):
    def __init__(self, gate: Gate, providers: Providers, templates: Templates, settings: Any, store: RunStore) -> None:
        super().__init__(gate, providers, store, settings.retries.max_rephrases, settings.image.max_pixels,
                         judges=2 * settings.judge_samples, vision=vision_policy(settings))
        self.templates = templates
        self.settings = settings

    # --- the one path of a model task ---------------------------------------------------------------

    async def ask(self, task: Task) -> dict[str, Any]:
        """Ask `task` through the gate (answered from the log when it is recorded) and return its result."""
        shown = {**TEMPLATE_DEFAULTS, **task.variables, **({"words": task.asked.words} if task.asked else {})}
        system, user = self.templates.render(task.template or task.task, shown)
        service = "vision" if task.images else "text"
        base = max_tokens(getattr(getattr(self.settings, service), "max_output_tokens", None), task.task)
        request_fields = dict(key=task.key, task=task.task, system=system, user=user,
                              variables=task.view if task.view is not None else task.variables,
                              schema=strict_json_schema(task.answer) if task.answer else None,
                              schema_name=task.task, temperature=task.temperature, max_output_tokens=base)
        if task.images:
            # every judge of a picture sends its one vision input (made when the picture landed)
            request: TextRequest = VisionRequest(**request_fields, images=tuple(
                self.store.path / self.vision.path_for(image) for image in task.images))
            call = self.providers.vision.judge
        else:
            request, call = TextRequest(**request_fields), self.providers.text.complete

        async def attempt() -> StepAnswer:
            nonlocal request
            try:
                answer = await call(request)  # type: ignore[arg-type]
                try:
                    return self._read(task, answer)
                except CallError as exc:  # an answer that does not fit was paid for all the same
                    raise paid(exc, answer.usage) from None
            except AnswerCutOff as exc:
                if exc.grow:  # more tokens may fix it: nothing was said, or a JSON answer was cut
                    request = replace(request, max_output_tokens=grown(request.max_output_tokens, base))
                raise

        digests = [self.digests.get(image, "") for image in task.images]
        return await self.gate.call(task.key, service, attempt, inputs=inputs_of(task.task, task.variables, *digests))

    @staticmethod
    def _read(task: Task, answer: TextResult) -> StepAnswer:
        """A model's answer as the step's result: a plain one by the length rule, a structured one parsed and
        validated (one cut off by the length limit is no answer), then `task.check`."""
        cut = answer.finish_reason == "length"
        meta = {**answer.meta, "finish_reason": "length"} if cut else answer.meta
        if task.answer is None:
            plain = plain_answer(answer.text, task.asked, cut, task.task)
            result: dict[str, Any] = {"text": plain.text}
            if plain.trimmed:
                meta = {**meta, "trimmed": plain.trimmed}
        elif cut:
            raise AnswerCutOff(f"the {task.task} answer was cut off at the length limit before its JSON ended")
        else:
            result = parse_answer(answer.text, task.answer).model_dump()
        return StepAnswer(task.check(result) if task.check else result, answer.usage, meta)

    async def rephrase(self, iteration: int, lane: str, round_number: int, prompt: str, why: str) -> str:
        """The LLM's rewording of an image prompt that was refused for content policy (intent kept)."""
        result = await self.ask(Task(key_of(iteration, lane, f"rephrase.r{round_number}"), "rephrase",
                                     {"prompt": prompt, "reason": why}, asked=ASKED["prompt"]))
        return result["text"]

    # --- text tasks ---------------------------------------------------------------------------------

    async def expand(self, iteration: int, lane: str, dimension: str, idea: str, attempt: int = 0,
                     avoid: list[str] | None = None) -> str:
        task = f"expand_{dimension}"
        variables: dict[str, Any] = {"idea": idea, "lane": lane}
        if avoid:
            variables["variety"] = variety(None, 0, avoid)
        key = key_of(iteration, lane, task if attempt == 0 else f"{task}.v{attempt}")
        result = await self.ask(Task(key, task, variables, temperature=self.settings.text.temperature,
                                     view={**variables, "avoid": list(avoid or [])}, asked=ASKED[dimension]))
        return result["text"]

    async def combine(self, iteration: int, lane: str, what: str, how: str, attempt: int = 0) -> str:
        key = key_of(iteration, lane, "combine" if attempt == 0 else f"combine.v{attempt}")
        result = await self.ask(Task(key, "combine", {"what": what, "how": how}, asked=ASKED["prompt"]))
        return result["text"]

    async def critique(self, iteration: int, parent: Any, dimension: str, idea: str) -> Critique:
        name, rule, _ = DIMENSIONS[dimension]
        variables = {
            "dimension": dimension, "dimension_name": name, "dimension_rule": rule, "idea": idea,
            "what": parent.what, "how": parent.how, "alignment": round(parent.alignment), "aesthetic": parent.aesthetic,
            "alignment_notes": parent.alignment_notes or "none", "aesthetic_notes": parent.aesthetic_notes or "none",
            "missing": "; ".join(parent.missing) or "nothing", "weak": ", ".join(parent.weak) or "none",
        }
        result = await self.ask(Task(key_of(iteration, f"p-{parent.id}", "critique"), "critique", variables,
                                     answer=CritiqueAnswer,
                                     view={**variables, "missing": parent.missing, "weak": parent.weak}))
        return Critique(result["critique"], list(result["suggestions"]))

    async def refine(self, iteration: int, lane: str, dimension: str, parent: Any, critique: Critique, idea: str,
                     variant: int | None = None, siblings: int = 1, attempt: int = 0,
                     avoid: list[str] | None = None) -> str:
        """The lane's new text for `dimension`. `variant` of `siblings` (None: no hint, as runs made before
        the hint existed) asks for a version that differs from the parent's other children; `avoid` lists
        versions already taken (a re-ask, `attempt` > 0, under a key of its own)."""
        name, rule, form = DIMENSIONS[dimension]
        current, other = (parent.what, parent.how) if dimension == "what" else (parent.how, parent.what)
        variables = {
            "dimension": dimension, "dimension_name": name, "dimension_rule": rule, "dimension_form": form,
            "idea": idea, "current": current, "other": other, "critique": critique.text,
            "suggestions": "\n".join(f"- {s}" for s in critique.suggestions),
            "what": parent.what, "how": parent.how,
        }
        if hint := variety(variant, siblings, avoid or []):
            variables["variety"] = hint
        task = f"refine_{dimension}"
        key = key_of(iteration, lane, task if attempt == 0 else f"{task}.v{attempt}")
        result = await self.ask(Task(key, "refine", variables, temperature=self.settings.text.temperature,
                                     view={**variables, "suggestions": critique.suggestions, "variant": variant,
                                           "avoid": list(avoid or [])}, asked=ASKED[dimension]))
        return result["text"]

    async def checklist(self, idea: str) -> list[dict[str, Any]]:
        """Once per run: the idea as weighted yes/no questions with dependencies, kept in checklist.json."""
        from beamsearch.judging import validate_checklist

        def check(answer: dict[str, Any]) -> dict[str, Any]:
            return {"questions": validate_checklist(answer["questions"])}

        result = await self.ask(Task(CHECKLIST_KEY, "checklist", {"idea": idea}, answer=ChecklistAnswer, check=check))
        self.store.write_json("checklist.json", {"idea": idea, "questions": result["questions"]})
        return result["questions"]

    # --- judging ------------------------------------------------------------------------------------

    async def judge_alignment(self, iteration: int, lane: str, image: str, idea: str, sample: int = 0) -> Judgement:
        r = await self.ask(Task(sample_key(iteration, lane, "judge_alignment", sample), "judge_alignment",
                                {"idea": idea}, answer=AlignmentAnswer, images=(image,)))
        return Judgement(r["score"], r["notes"], found=r["found"], missing=r["missing"])

    async def judge_aesthetic(self, iteration: int, lane: str, image: str, idea: str, sample: int = 0) -> Judgement:
        r = await self.ask(Task(sample_key(iteration, lane, "judge_aesthetic", sample), "judge_aesthetic",
                                {"idea": idea}, answer=AestheticAnswer, images=(image,)))
        return Judgement(r["score"], r["notes"], weak=r["weak"])

    async def judge_checklist(self, iteration: int, lane: str, image: str, idea: str,
                              questions: list[dict[str, Any]], sample: int = 0) -> dict[str, bool]:
        """The judge's yes/no to every checklist question for one image (before dependencies)."""
        from beamsearch.judging import parse_checks

        listed = "\n".join(f"{q['id']}: {q['question']}" for q in questions)

        def check(answer: dict[str, Any]) -> dict[str, Any]:
            return {"answers": parse_checks(questions, answer["answers"]), "notes": answer["notes"]}

        result = await self.ask(Task(sample_key(iteration, lane, "judge_checklist", sample), "judge_checklist",
                                     {"idea": idea, "questions_text": listed, "questions": questions},
                                     answer=ChecklistJudgeAnswer, check=check, images=(image,)))
        return dict(result["answers"])

    async def judge_pairwise(self, iteration: int, first: Any, second: Any, idea: str, alpha: float) -> str:
        """Which of two images is better overall, shown in this order: 'first' or 'second'."""
        variables = {"idea": idea, "alpha": alpha, "alignment_weight": round(100 * alpha),
                     "aesthetic_weight": round(100 * (1 - alpha)), "first": first.id, "second": second.id}
        result = await self.ask(Task(f"i{iteration}/pair-{first.id}-{second.id}/judge_pairwise", "judge_pairwise",
                                     variables, answer=PairwiseAnswer, images=(first.image, second.image)))
        return result["winner"]

    async def render(self, iteration: int, lane: str, candidate_id: str, prompt: str, labels: dict[str, str]) -> Rendered:
        """Generate the image; on a content-policy refusal, have the LLM rephrase and try again (bounded)."""
        return await self.render_with(iteration, lane, candidate_id, prompt, labels, self.rephrase)

