"""One function per model task. Each renders its template, asks a provider through the gate, and
parses and validates the answer, so the engine deals only in plain values.

Step keys are stable names of the work (`i0/c03/expand_what`, `i1/p-i0c02/critique`): the same search
always asks the same keys, which is what lets resume answer them from the log.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from beamsearch import pngmeta
from beamsearch.errors import ContentPolicyError, InvalidAnswer, StepFailed
from beamsearch.gate import Gate, StepAnswer
from beamsearch.providers.base import ImageRequest, Providers, TextRequest, VisionRequest
from beamsearch.schemas import (
    AestheticAnswer,
    AlignmentAnswer,
    ChecklistAnswer,
    ChecklistJudgeAnswer,
    CritiqueAnswer,
    PairwiseAnswer,
    clean_text,
    parse_answer,
    strict_json_schema,
    strict_schema,
)
from beamsearch.store import RunStore, atomic_write
from beamsearch.templates import Templates

DIMENSIONS = {
    "what": ("WHAT (content)", "Change only the content: subjects, objects, colours, counts, actions, setting. Never style.",
             "one paragraph"),
    "how": ("HOW (style)", "Change only the style: lighting, composition, palette, medium, mood. Never add or remove content.",
            "one comma-separated line"),
}
MAX_IMAGE_PIXELS = 40_000_000


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


@dataclass
class Rendered:
    path: str
    prompt: str
    revised_prompt: str | None
    rephrases: list[str]


def inputs_of(task: str, *parts: Any) -> str:
    """A short fingerprint of what a step is asked: its task, its data (not the template's wording, so
    that editing a prompt file does not make a resume pay again) and the digests of its images."""
    text = json.dumps([task, *parts], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def key_of(iteration: int, lane: str, task: str) -> str:
    return f"i{iteration}/{lane}/{task}"


def sample_key(iteration: int, lane: str, task: str, sample: int) -> str:
    """The k-th independent answer of a judge: the first keeps the plain key, the others add `.s<k>`."""
    return key_of(iteration, lane, task if sample == 0 else f"{task}.s{sample}")


class Steps:
    def __init__(self, gate: Gate, providers: Providers, templates: Templates, settings: Any, store: RunStore) -> None:
        self.gate = gate
        self.providers = providers
        self.templates = templates
        self.settings = settings
        self.store = store
        self.digests: dict[str, str] = {}  # image path -> digest of the bytes the provider returned

    # --- text tasks ------------------------------------------------------------------------------

    async def _text(self, key: str, task: str, template: str, variables: dict[str, Any], *,
                    schema: type | None = None, temperature: float | None = None) -> dict[str, Any]:
        system, user = self.templates.render(template, variables)
        request = TextRequest(
            key=key, task=task, system=system, user=user, variables=variables,
            schema=strict_schema(schema) if schema else None, schema_name=task, temperature=temperature,
        )

        async def attempt() -> StepAnswer:
            answer = await self.providers.text.complete(request)
            if schema is not None:
                return StepAnswer(parse_answer(answer.text, schema).model_dump(), answer.usage, answer.meta)
            return StepAnswer({"text": clean_text(answer.text, task)}, answer.usage, answer.meta)

        return await self.gate.call(key, "text", attempt, inputs=inputs_of(task, variables))

    async def expand(self, iteration: int, lane: str, dimension: str, idea: str) -> str:
        task = f"expand_{dimension}"
        result = await self._text(key_of(iteration, lane, task), task, task, {"idea": idea, "lane": lane},
                                  temperature=self.settings.text.temperature)
        return result["text"]

    async def combine(self, iteration: int, lane: str, what: str, how: str) -> str:
        result = await self._text(key_of(iteration, lane, "combine"), "combine", "combine", {"what": what, "how": how})
        return result["text"]

    async def critique(self, iteration: int, parent: Any, dimension: str, idea: str) -> Critique:
        name, rule, _ = DIMENSIONS[dimension]
        variables = {
            "dimension": dimension, "dimension_name": name, "dimension_rule": rule, "idea": idea,
            "what": parent.what, "how": parent.how, "alignment": round(parent.alignment), "aesthetic": parent.aesthetic,
            "alignment_notes": parent.alignment_notes or "none", "aesthetic_notes": parent.aesthetic_notes or "none",
            "missing": "; ".join(parent.missing) or "nothing", "weak": ", ".join(parent.weak) or "none",
        }
        sim_view = {**variables, "missing": parent.missing, "weak": parent.weak}
        system, user = self.templates.render("critique", variables)
        key = key_of(iteration, f"p-{parent.id}", "critique")
        request = TextRequest(key=key, task="critique", system=system, user=user, variables=sim_view,
                              schema=strict_schema(CritiqueAnswer), schema_name="critique")

        async def attempt() -> StepAnswer:
            answer = await self.providers.text.complete(request)
            return StepAnswer(parse_answer(answer.text, CritiqueAnswer).model_dump(), answer.usage, answer.meta)

        result = await self.gate.call(key, "text", attempt, inputs=inputs_of("critique", variables))
        return Critique(result["critique"], list(result["suggestions"]))

    async def refine(self, iteration: int, lane: str, dimension: str, parent: Any, critique: Critique, idea: str) -> str:
        name, rule, form = DIMENSIONS[dimension]
        current, other = (parent.what, parent.how) if dimension == "what" else (parent.how, parent.what)
        variables = {
            "dimension": dimension, "dimension_name": name, "dimension_rule": rule, "dimension_form": form,
            "idea": idea, "current": current, "other": other, "critique": critique.text,
            "suggestions": "\n".join(f"- {s}" for s in critique.suggestions),
            "what": parent.what, "how": parent.how,
        }
        system, user = self.templates.render("refine", variables)
        key = key_of(iteration, lane, f"refine_{dimension}")
        request = TextRequest(key=key, task="refine", system=system, user=user,
                              variables={**variables, "suggestions": critique.suggestions},
                              temperature=self.settings.text.temperature)

        async def attempt() -> StepAnswer:
            answer = await self.providers.text.complete(request)
            return StepAnswer({"text": clean_text(answer.text, "refine")}, answer.usage, answer.meta)

        return (await self.gate.call(key, "text", attempt, inputs=inputs_of("refine", variables)))["text"]

    # --- images ----------------------------------------------------------------------------------

    async def render(self, iteration: int, lane: str, candidate_id: str, prompt: str, labels: dict[str, str]) -> Rendered:
        """Generate the image; on a content-policy refusal, have the LLM rephrase and try again (bounded).
        Refusals and rephrases are recorded steps too, so a resumed run does not repeat them."""
        rephrases: list[str] = []
        current = prompt
        for round_number in range(self.settings.retries.max_rephrases + 1):
            suffix = "" if round_number == 0 else f".r{round_number}"
            key = key_of(iteration, lane, f"image{suffix}")
            result = await self._image(key, candidate_id, current, labels)
            if "rejected" not in result:
                return Rendered(result["path"], current, result.get("revised_prompt"), rephrases)
            if round_number == self.settings.retries.max_rephrases:
                raise StepFailed(f"the image prompt was refused {round_number + 1} times for content policy: {result['rejected']}")
            rephrased = await self._text(key_of(iteration, lane, f"rephrase.r{round_number + 1}"), "rephrase", "rephrase",
                                         {"prompt": current, "reason": result["rejected"]})
            current = rephrased["text"]
            rephrases.append(current)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _image(self, key: str, candidate_id: str, prompt: str, labels: dict[str, str]) -> dict[str, Any]:
        request = ImageRequest(key=key, prompt=prompt)

        async def attempt() -> StepAnswer:
            try:
                answer = await self.providers.image.generate(request)
            except ContentPolicyError as exc:
                return StepAnswer({"rejected": exc.message})
            chunks = {"beamsearch:id": candidate_id, "beamsearch:prompt": prompt, "beamsearch:step": key, **labels}
            if answer.revised_prompt:
                chunks["beamsearch:revised_prompt"] = answer.revised_prompt
            # decoding the header and writing the file block: off the event loop, so other lanes go on
            width, height, path, digest = await asyncio.to_thread(self._save_image, candidate_id, answer.data,
                                                                  answer.format, chunks)
            result: dict[str, Any] = {"path": path, "format": answer.format, "width": width, "height": height,
                                      "sha256": digest}
            if answer.revised_prompt:
                result["revised_prompt"] = answer.revised_prompt
            return StepAnswer(result, answer.usage, answer.meta)

        def still_valid(result: dict[str, Any]) -> bool:
            return "rejected" in result or (self.store.path / result["path"]).is_file()

        result = await self.gate.call(key, "image", attempt, still_valid=still_valid, inputs=inputs_of("image", prompt))
        if "path" in result:  # the judges' inputs name the picture by its digest, so a new picture is judged anew
            self.digests[result["path"]] = result.get("sha256", "")
        return result

    # --- judging ---------------------------------------------------------------------------------

    async def _judge(self, key: str, task: str, image: str, variables: dict[str, Any], schema: type) -> dict[str, Any]:
        system, user = self.templates.render(task, variables)
        request = VisionRequest(key=key, task=task, system=system, user=user, variables=variables,
                                schema=strict_schema(schema), schema_name=task, images=(self.store.path / image,))

        async def attempt() -> StepAnswer:
            answer = await self.providers.vision.judge(request)
            return StepAnswer(parse_answer(answer.text, schema).model_dump(), answer.usage, answer.meta)

        return await self.gate.call(key, "vision", attempt, inputs=inputs_of(task, variables, self.digests.get(image, "")))

    async def judge_alignment(self, iteration: int, lane: str, image: str, idea: str, sample: int = 0) -> Judgement:
        key = sample_key(iteration, lane, "judge_alignment", sample)
        r = await self._judge(key, "judge_alignment", image, {"idea": idea}, AlignmentAnswer)
        return Judgement(r["score"], r["notes"], found=r["found"], missing=r["missing"])

    async def judge_aesthetic(self, iteration: int, lane: str, image: str, idea: str, sample: int = 0) -> Judgement:
        key = sample_key(iteration, lane, "judge_aesthetic", sample)
        r = await self._judge(key, "judge_aesthetic", image, {"idea": idea}, AestheticAnswer)
        return Judgement(r["score"], r["notes"], weak=r["weak"])

    # --- judging methods of issue 7 (see judging.py) ---------------------------------------------

    async def checklist(self, idea: str) -> list[dict[str, Any]]:
        """Once per run: the idea as weighted yes/no questions with dependencies, kept in checklist.json."""
        from beamsearch.judging import CHECKLIST_KEY, validate_checklist

        variables = {"idea": idea}
        system, user = self.templates.render("checklist", variables)
        request = TextRequest(key=CHECKLIST_KEY, task="checklist", system=system, user=user, variables=variables,
                              schema=strict_json_schema(ChecklistAnswer), schema_name="checklist")

        async def attempt() -> StepAnswer:
            answer = await self.providers.text.complete(request)
            parsed = parse_answer(answer.text, ChecklistAnswer).model_dump()
            return StepAnswer({"questions": validate_checklist(parsed["questions"])}, answer.usage, answer.meta)

        questions = (await self.gate.call(CHECKLIST_KEY, "text", attempt,
                                          inputs=inputs_of("checklist", variables)))["questions"]
        self.store.write_json("checklist.json", {"idea": idea, "questions": questions})
        return questions

    async def _look(self, key: str, task: str, images: tuple[str, ...], variables: dict[str, Any], schema: type,
                    check: Any) -> dict[str, Any]:
        """A vision step with a nested answer schema and a check of its own (an InvalidAnswer is retried)."""
        system, user = self.templates.render(task, variables)
        request = VisionRequest(key=key, task=task, system=system, user=user, variables=variables,
                                schema=strict_json_schema(schema), schema_name=task,
                                images=tuple(self.store.path / image for image in images))

        async def attempt() -> StepAnswer:
            answer = await self.providers.vision.judge(request)
            return StepAnswer(check(parse_answer(answer.text, schema).model_dump()), answer.usage, answer.meta)

        digests = [self.digests.get(image, "") for image in images]
        return await self.gate.call(key, "vision", attempt, inputs=inputs_of(task, variables, *digests))

    async def judge_checklist(self, iteration: int, lane: str, image: str, idea: str,
                              questions: list[dict[str, Any]], sample: int = 0) -> dict[str, bool]:
        """The judge's yes/no to every checklist question for one image (before dependencies)."""
        from beamsearch.judging import parse_checks

        listed = "\n".join(f"{q['id']}: {q['question']}" for q in questions)
        variables = {"idea": idea, "questions_text": listed, "questions": questions}

        def check(answer: dict[str, Any]) -> dict[str, Any]:
            return {"answers": parse_checks(questions, answer["answers"]), "notes": answer["notes"]}

        result = await self._look(sample_key(iteration, lane, "judge_checklist", sample), "judge_checklist", (image,),
                                  variables, ChecklistJudgeAnswer, check)
        return dict(result["answers"])

    async def judge_pairwise(self, iteration: int, first: Any, second: Any, idea: str, alpha: float) -> str:
        """Which of two images is better overall, shown in this order: 'first' or 'second'."""
        variables = {"idea": idea, "alpha": alpha, "alignment_weight": round(100 * alpha),
                     "aesthetic_weight": round(100 * (1 - alpha)), "first": first.id, "second": second.id}
        key = f"i{iteration}/pair-{first.id}-{second.id}/judge_pairwise"
        result = await self._look(key, "judge_pairwise", (first.image, second.image), variables, PairwiseAnswer,
                                  lambda answer: answer)
        return result["winner"]

    def _save_image(self, candidate_id: str, data: bytes, fmt: str,
                    chunks: dict[str, str]) -> tuple[int, int, str, str]:
        """Check the image, label a PNG with its text chunks, write it atomically:
        (width, height, path, digest of the bytes as the provider sent them)."""
        width, height = check_image(data)
        digest = hashlib.sha256(data).hexdigest()[:16]
        if fmt == "png":
            data = pngmeta.with_text(data, chunks)
        return width, height, self.store.write_image(candidate_id, data, fmt), digest

    async def annotate(self, image: str, entries: dict[str, str]) -> None:
        """Store scores in the PNG's text chunks (no pixel re-encode); other formats are left as they are.
        The rewrite runs in a worker thread: file I/O on the event loop would delay every other lane."""
        await asyncio.to_thread(self._annotate, self.store.path / image, entries)

    @staticmethod
    def _annotate(path: Path, entries: dict[str, str]) -> None:
        if path.suffix == ".png" and path.is_file():
            atomic_write(path, pngmeta.with_text(path.read_bytes(), entries))


def check_image(data: bytes) -> tuple[int, int]:
    """Decode the header and refuse decompression bombs and non-images (a malformed answer, retried)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise InvalidAnswer(f"the image is too large ({width}x{height})")
            image.verify()
    except InvalidAnswer:
        raise
    except Exception as exc:  # Pillow raises many types for broken data
        raise InvalidAnswer(f"the image data cannot be decoded ({type(exc).__name__})") from None
    return width, height
