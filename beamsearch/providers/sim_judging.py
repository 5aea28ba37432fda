"""The simulator's answers for the judging methods of issue 7: a checklist made from the idea, yes/no
answers measured from the pixels, and pairwise verdicts.

Like the rating judge, these judges are noisy around the hidden truth (`sim_world.measure`):
* a checklist answer is what the pixels show, flipped with probability `sim.checklist_noise`, drawn
  independently per question and per step key;
* a pairwise verdict compares each image's true overall quality (alpha * alignment + (1 - alpha) * 10 *
  aesthetic) plus gaussian noise of `sim.pairwise_noise` per image, and adds `sim.pairwise_bias` points to
  whichever image is shown first, as real vision judges favour the first image.
Every answer records the truth in its metadata (`sim_truth`), so methods can be scored against it.

The simulator's checklist asks what its world can show: each entity, its colour and form, the scene,
one "together" relation (its painter puts objects in slots, so it has no spatial relations) and the
whole picture. Its judge perceives the way its truth measures: it looks for each object by the colour
asked for (a blob of that colour is "the lighthouse"), then checks that blob's form. So the entity and
attribute questions carry the truth's own credit (0.4 for the object's colour being there, 0.6 more for
its form) and a checklist answered without error agrees with the truth's ordering of alignment; the
relation and whole-picture questions add a little weight of their own.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from PIL import Image

from beamsearch.errors import RetryableError
from beamsearch.providers import sim_world as world
from beamsearch.providers.base import TextResult, Usage, VisionRequest

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


def make_checklist(idea: str) -> list[dict[str, Any]]:
    """The questions a careful reader would ask of the idea, as the simulator's LLM answer."""
    wanted = world.requirements(idea)
    questions: list[dict[str, Any]] = []
    entity_ids = []
    for i, e in enumerate(wanted.entities, start=1):
        eid = f"e{i}"
        entity_ids.append(eid)
        questions.append({"id": eid, "question": f"Is there a {e.name}?", "category": "entity",
                          "element": e.phrase(), "depends_on": [], "weight": WEIGHTS["entity"]})
        questions.append({"id": f"a{i}", "question": f"Is the {e.name} {e.color} and {e.shape}-shaped?",
                          "category": "attribute",
                          "element": e.phrase(), "depends_on": [eid], "weight": WEIGHTS["attribute"]})
    if len(wanted.entities) >= 2:
        first, second = wanted.entities[0], wanted.entities[1]
        questions.append({"id": "r1", "question": f"Are the {first.name} and the {second.name} in the picture together?",
                          "category": "relation", "element": f"{first.name} with {second.name}",
                          "depends_on": entity_ids[:2], "weight": WEIGHTS["relation"]})
    for j, scene in enumerate(wanted.scenes, start=1):
        questions.append({"id": f"s{j}", "question": SCENE_QUESTIONS.get(scene, f"Is the scene {scene}?"),
                          "category": "scene", "element": f"scene: {scene}", "depends_on": [],
                          "weight": WEIGHTS["scene"]})
    questions.append({"id": "w", "question": f"Does the picture as a whole show {idea.strip().rstrip('.')}?",
                      "category": "whole", "element": "the whole idea", "depends_on": entity_ids,
                      "weight": WEIGHTS["whole"]})
    return questions


def text_answer(task: str, variables: dict[str, Any]) -> dict[str, Any]:
    if task == "checklist":
        return {"questions": make_checklist(variables["idea"])}
    raise RetryableError(f"the simulator has no answer for the task '{task}'")  # pragma: no cover


def critique_view(variables: dict[str, Any]) -> dict[str, Any]:
    """What the simulator's critique reads when the judge reported failed checklist questions: each
    question of its own checklist becomes the element it checks ('red lighthouse', 'scene: night'), which
    is the vocabulary its critique acts on; questions about relations or the whole picture name no single
    element and are left to the others. Anything else (rating mode's findings) passes unchanged."""
    missing = variables.get("missing")
    if not isinstance(missing, list) or not missing:
        return variables
    by_question = {q["question"]: q for q in make_checklist(variables.get("idea", ""))}
    mapped: list[str] = []
    for item in missing:
        q = by_question.get(item)
        if q is None:
            mapped.append(item)
        elif q["category"] in ("entity", "attribute", "scene") and q["element"] not in mapped:
            mapped.append(q["element"])
    return {**variables, "missing": mapped}


# --- the vision judges ----------------------------------------------------------------------------


def _colour_present(small: Image.Image, entity: world.Entity) -> bool:
    """Is there a blob in the colour asked for, where the judge looks for the object?"""
    return world._shape_of(world._colour_mask(small, world.COLORS[entity.color]))[0] is not None


def _truths(image_path: Any, idea: str, questions: list[dict[str, Any]]) -> tuple[dict[str, bool], world.Measurement]:
    with Image.open(image_path) as image:
        image.load()
        truth = world.measure(image, idea)
        small = image.convert("RGB").resize((world.MEASURE_SIDE, world.MEASURE_SIDE), Image.Resampling.BILINEAR)
    wanted = {e.name: e for e in world.requirements(idea).entities}
    answers: dict[str, bool] = {}
    for q in questions:
        element = q.get("element", "")
        named = [wanted.get(e.name, e) for e in world.parse(element, pseudo=True).entities]
        category = q.get("category")
        if category == "entity" and named:
            answers[q["id"]] = _colour_present(small, named[0])
        elif category in ("attribute", "scene"):
            answers[q["id"]] = element in truth.found
        elif category == "relation" and named:
            answers[q["id"]] = all(_colour_present(small, e) for e in named)
        else:  # the whole picture, or a question the simulator cannot read: is nothing missing?
            answers[q["id"]] = not truth.missing
    return answers, truth


def _overall(path: Any, idea: str, alpha: float) -> float:
    with Image.open(path) as image:
        truth = world.measure(image, idea)
    return alpha * truth.alignment + (1 - alpha) * 10 * truth.aesthetic


async def judge(request: VisionRequest, seed: int, settings: Any, meta: dict[str, Any], usage_of: Any) -> TextResult:
    """Answer a checklist or pairwise judging request; `meta` and `usage_of` come from the simulator."""
    v = request.variables
    if request.task == "judge_checklist":
        truths, truth = await asyncio.to_thread(_truths, request.images[0], v["idea"], v["questions"])
        answers = []
        for q in v["questions"]:
            wrong = world.stable_rng(seed, request.key, "checklist", q["id"]).random() < settings.checklist_noise
            answers.append({"id": q["id"], "answer": "yes" if truths[q["id"]] != wrong else "no"})
        failed = [q["question"] for q, a in zip(v["questions"], answers, strict=True) if a["answer"] == "no"]
        answer: dict[str, Any] = {"answers": answers,
                                  "notes": ("No: " + "; ".join(failed)) if failed else "Every question is answered yes."}
        meta["sim_truth"] = truth.alignment
        meta["sim_answers"] = {qid: "yes" if ok else "no" for qid, ok in truths.items()}
    else:
        alpha = float(v.get("alpha", 0.7))
        first, second = await asyncio.gather(*(asyncio.to_thread(_overall, p, v["idea"], alpha) for p in request.images[:2]))
        rng = world.stable_rng(seed, request.key, "pairwise-noise")
        seen_first = first + settings.pairwise_bias + rng.gauss(0, settings.pairwise_noise)
        seen_second = second + rng.gauss(0, settings.pairwise_noise)
        winner = "first" if seen_first >= seen_second else "second"
        answer = {"winner": winner, "reason": f"The {winner} image shows the idea better overall."}
        meta["sim_truth"] = {"first": round(first, 3), "second": round(second, 3)}
    text = json.dumps(answer)
    usage = usage_of("sim-vision", request.system + request.user, text)
    return TextResult(text=text, usage=Usage(**{**usage.__dict__, "image_input_tokens": 85 * len(request.images)}), meta=meta)
