"""The simulator's answers for the judging methods of issue 7: a checklist made from the idea, yes/no
answers measured from the pixels, and pairwise verdicts.

Like the rating judge, these judges perceive the hidden truth (`sim_measure`) with errors
(`sim_perception`):
* a checklist answer is what the pixels show, misperceived like any element: a yes overlooked at
  `sim.judge_miss_rate`, a no answered yes at `sim.judge_hallucination_rate` (or, with
  `sim.checklist_noise` set, wrong either way at that rate);
* a pairwise verdict compares each image's overall quality as the judge perceives it (alpha *
  alignment + (1 - alpha) * 10 * aesthetic, through the same perception, for the image's place in the
  comparison), plus gaussian noise of `sim.pairwise_noise` per image, and adds `sim.pairwise_bias`
  points to whichever image is shown first, as real vision judges favour the first image.
Every answer records the truth in its metadata (`sim_truth`), so methods can be scored against it.

The checklist is the simulator's text model's work: it reads the idea through the simulator's English
(`sim_language`) and asks of each thing whether it is there and whether it is as said (its colour, when
the idea says one), of each setting, of one "together" relation (its painter puts objects in slots, so it
has no spatial relations) and of the whole picture. It knows nothing of shapes or colour values. Its judge
perceives the way its truth measures: it looks for each thing by its colour (a blob of that colour is "the
lighthouse"), then checks that blob's form. So the entity and attribute questions carry the truth's own
credit (0.4 for the thing's colour being there, 0.6 more for its form) and a checklist answered without
error agrees with the truth's ordering of alignment; the relation and whole-picture questions add a
little weight of their own.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from PIL import Image

from beamsearch.errors import RetryableError
from beamsearch.providers import sim_language as lang
from beamsearch.providers import sim_world as world
from beamsearch.providers.base import TextResult, Usage, VisionRequest
from beamsearch.providers.sim_measure import Measurement, _colour_mask, _shape_of, measure_file, shrink
from beamsearch.providers.sim_perception import Look, answers_yes, perceive

TEXT_TASKS = ("checklist",)
VISION_TASKS = ("judge_checklist", "judge_pairwise")
SCENE_QUESTIONS = {"night": "Is it night?", "storm": "Is there a storm?", "sunset": "Is it sunset?",
                   "dawn": "Is it dawn?", "day": "Is it a clear day?", "snow": "Is it snowing?",
                   "space": "Is it set in deep space?", "fog": "Is there thick fog?", "sea": "Is there a sea?",
                   "lake": "Is there a lake?", "field": "Is there a field?", "desert": "Is it in a desert?",
                   "beach": "Is there a beach?", "road": "Is there a road?"}
# Weights follow the truth's own accounting: an entity is worth 1 (0.4 for its colour being there, 0.6 for
# the right form in that colour), a scene 0.6; the relation and the whole-picture questions add a little.
WEIGHTS = {"entity": 0.4, "attribute": 0.6, "scene": 0.6, "relation": 0.2, "whole": 0.2}
WHOLE = "Does the picture as a whole show"


def make_checklist(idea: str) -> list[dict[str, Any]]:
    """The questions a careful reader would ask of the idea, as the simulator's LLM answer."""
    things = lang.phrases(idea)
    questions: list[dict[str, Any]] = []
    entity_ids = []
    for i, p in enumerate(things, start=1):
        eid = f"e{i}"
        entity_ids.append(eid)
        questions.append({"id": eid, "question": f"Is there {lang.article(p.noun)}?", "category": "entity",
                          "element": p.text(), "depends_on": [], "weight": WEIGHTS["entity"]})
        asked = f"Is it {lang.article(p.text())}?" if p.colour_word else f"Does the {p.noun} look like {lang.article(p.noun)}?"
        questions.append({"id": f"a{i}", "question": asked, "category": "attribute",
                          "element": p.text(), "depends_on": [eid], "weight": WEIGHTS["attribute"]})
    if len(things) >= 2:
        first, second = things[0].noun, things[1].noun
        questions.append({"id": "r1", "question": f"Are the {first} and the {second} in the picture together?",
                          "category": "relation", "element": f"{first} with {second}",
                          "depends_on": entity_ids[:2], "weight": WEIGHTS["relation"]})
    for j, scene in enumerate(lang.scenes(idea), start=1):
        questions.append({"id": f"s{j}", "question": SCENE_QUESTIONS.get(scene, f"Is the scene {scene}?"),
                          "category": "scene", "element": f"scene: {scene}", "depends_on": [],
                          "weight": WEIGHTS["scene"]})
    questions.append({"id": "w", "question": f"{WHOLE} {idea.strip().rstrip('.')}?",
                      "category": "whole", "element": "the whole idea", "depends_on": entity_ids,
                      "weight": WEIGHTS["whole"]})
    return questions


def text_answer(task: str, variables: dict[str, Any]) -> dict[str, Any]:
    if task == "checklist":
        return {"questions": make_checklist(variables["idea"])}
    raise RetryableError(f"the simulator has no answer for the task '{task}'")  # pragma: no cover


def element_of(question: str) -> str | None:
    """The one thing or setting a failed checklist question asks about, read from its words, as the
    critic reads it; None for a question about several things or the whole picture."""
    if question.startswith(WHOLE) or question.endswith(" together?"):
        return None
    things, settings = lang.phrases(question), lang.scenes(question)
    if len(things) == 1 and not settings:
        return things[0].text()
    if settings and not things:
        return f"scene: {settings[0]}"
    return None


def critique_view(variables: dict[str, Any]) -> dict[str, Any]:
    """What the simulator's critique reads when the judge reported failed checklist questions: each
    question becomes the element it asks about ('red lighthouse', 'scene: night'), read from the
    question's own words (two questions about one thing become its most specific name); questions about
    relations or the whole picture name no single element and are left to the others. Anything that is
    not a question (rating mode's findings) passes unchanged."""
    missing = variables.get("missing")
    if not isinstance(missing, list) or not missing:
        return variables
    mapped: list[str] = []
    for item in missing:
        text = str(item)
        if not text.endswith("?"):
            mapped.append(text)
            continue
        element = element_of(text)
        if element is None:
            continue
        noun = element.rsplit(" ", 1)[-1]
        same = [i for i, m in enumerate(mapped) if m.rsplit(" ", 1)[-1] == noun and not m.startswith("scene: ")]
        if not same:
            mapped.append(element)
        elif len(element) > len(mapped[same[0]]):
            mapped[same[0]] = element
    return {**variables, "missing": mapped}


# --- the vision judges ----------------------------------------------------------------------------


def _colour_present(small: Image.Image, entity: world.Entity) -> bool:
    """Is there a blob in the colour asked for, where the judge looks for the thing?"""
    return _shape_of(_colour_mask(small, world.COLORS[entity.color]))[0] is not None


def _truths(image_path: Any, idea: str, questions: list[dict[str, Any]]) -> tuple[dict[str, bool], Measurement, str]:
    truth, digest = measure_file(image_path, idea)
    with Image.open(image_path) as image:
        small = shrink(image)
    wanted = {e.name: e for e in world.requirements(idea).entities}
    answers: dict[str, bool] = {}
    for q in questions:
        element = q.get("element", "")
        named = [wanted.get(e.name, e) for e in world.parse(element).entities]
        category = q.get("category")
        if category == "entity" and named:
            answers[q["id"]] = _colour_present(small, named[0])
        elif category in ("attribute", "scene"):
            answers[q["id"]] = element in truth.found
        elif category == "relation" and named:
            answers[q["id"]] = all(_colour_present(small, e) for e in named)
        else:  # the whole picture, or a question the simulator cannot read: is nothing missing?
            answers[q["id"]] = not truth.missing
    return answers, truth, digest


def _perceived_total(path: Any, idea: str, alpha: float, look: Any, sim: Any) -> tuple[float, float]:
    """An image's true overall quality, and as the judge perceives it in one place of one comparison."""
    truth, digest = measure_file(path, idea)
    seen = perceive(truth, Look(look.seed, digest, look.call), sim)
    return (alpha * truth.alignment + (1 - alpha) * 10 * truth.aesthetic,
            alpha * seen.alignment + (1 - alpha) * 10 * seen.aesthetic)


async def judge(request: VisionRequest, seed: int, settings: Any, meta: dict[str, Any], usage_of: Any) -> TextResult:
    """Answer a checklist or pairwise judging request; `meta` and `usage_of` come from the simulator."""
    v = request.variables
    if request.task == "judge_checklist":
        truths, truth, digest = await asyncio.to_thread(_truths, request.images[0], v["idea"], v["questions"])
        look = Look(seed, digest, request.key)
        answers = [{"id": q["id"], "answer": "yes" if answers_yes(truths[q["id"]], look, q["id"], settings) else "no"}
                   for q in v["questions"]]
        failed = [q["question"] for q, a in zip(v["questions"], answers, strict=True) if a["answer"] == "no"]
        answer: dict[str, Any] = {"answers": answers,
                                  "notes": ("No: " + "; ".join(failed)) if failed else "Every question is answered yes."}
        meta["sim_truth"] = truth.alignment
        meta["sim_image"] = request.images[0].name
        meta["sim_answers"] = {qid: "yes" if ok else "no" for qid, ok in truths.items()}
    else:
        alpha = float(v.get("alpha", 0.7))
        places = [Look(seed, "", f"{request.key}#{i}") for i in range(2)]
        (first, seen_a), (second, seen_b) = await asyncio.gather(*(
            asyncio.to_thread(_perceived_total, p, v["idea"], alpha, look, settings)
            for p, look in zip(request.images[:2], places, strict=True)))
        rng = world.stable_rng(seed, request.key, "pairwise-noise")
        seen_first = seen_a + settings.pairwise_bias + rng.gauss(0, settings.pairwise_noise)
        seen_second = seen_b + rng.gauss(0, settings.pairwise_noise)
        winner = "first" if seen_first >= seen_second else "second"
        answer = {"winner": winner, "reason": f"The {winner} image shows the idea better overall."}
        meta["sim_truth"] = {"first": round(first, 3), "second": round(second, 3)}
    text = json.dumps(answer)
    usage = usage_of("sim-vision", request.system + request.user, text)
    return TextResult(text=text, usage=Usage(**{**usage.__dict__, "image_input_tokens": 85 * len(request.images)}), meta=meta)
