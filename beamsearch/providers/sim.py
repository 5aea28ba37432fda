"""The offline simulator: a real provider for all three roles that needs no network and no key.

Every answer is deterministic from the run seed and the step key (and the attempt number, for injected
faults), so a replayed or repeated run sees the same world. Its images are painted from the prompt's
words (see `sim_world`), its judge measures those pixels against the user's idea and then adds judge
noise, and its critique and refinement act on what the judge reported missing, so beam search has
something real to improve. Everything it produces is labelled as simulated.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections import defaultdict
from typing import Any

from PIL import Image

from beamsearch.errors import ContentPolicyError, RetryableError
from beamsearch.providers import sim_judging
from beamsearch.providers import sim_world as world
from beamsearch.providers.base import ImageRequest, ImageResult, TextRequest, TextResult, Usage, VisionRequest

SIM_LABEL = "simulator (offline; images and scores are simulated)"
SKY_PHRASES = {"night": "at night", "storm": "in a storm", "sunset": "at sunset", "dawn": "at dawn",
               "day": "on a clear day", "snow": "in the snow", "space": "in deep space", "fog": "in thick fog"}
GROUND_PHRASES = {"sea": "by the sea", "lake": "by a lake", "field": "in a field", "desert": "in the desert",
                  "beach": "on a beach", "road": "on a road"}


def describe_what(entities: list[world.Entity], scenes: list[str]) -> str:
    """A plain English WHAT, which `world.parse` reads back exactly."""
    names = [f"a {e.color} {e.name}" for e in entities] or ["an empty scene"]
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    places = [SKY_PHRASES.get(s) or GROUND_PHRASES.get(s, "") for s in scenes]
    text = listed[0].upper() + listed[1:]
    if places:
        text += " " + " ".join(p for p in places if p)
    return text + "."


def parse_how(text: str) -> list[str]:
    return [t.strip() for t in text.lower().replace(".", "").split(",") if t.strip()]


class Simulator:
    """Implements TextModel, ImageModel and VisionModel offline."""

    label = SIM_LABEL

    def __init__(self, seed: int, sim: Any) -> None:
        self.seed = seed
        self.settings = sim
        self.attempts: dict[str, int] = defaultdict(int)
        self.calls: dict[str, int] = defaultdict(int)

    # --- plumbing ---------------------------------------------------------------------------------

    async def _pause_and_maybe_fail(self, service: str, key: str) -> dict[str, Any]:
        attempt = self.attempts[key]
        self.attempts[key] += 1
        self.calls[key] += 1
        latency_settings = getattr(self.settings.latency, service)
        rng = world.stable_rng(self.seed, key, "latency", attempt)
        delay = latency_settings.mean * (1 + latency_settings.jitter * rng.uniform(-1, 1))
        if delay > 0:
            await asyncio.sleep(delay)
        if self.settings.failure_rate and world.stable_rng(self.seed, key, "fail", attempt).random() < self.settings.failure_rate:
            raise RetryableError(f"simulated transient failure of {service}")
        return {"latency": round(delay, 6), "simulated": True}

    @staticmethod
    def _usage(model: str, prompt: str, answer: str, images: int = 0) -> Usage:
        return Usage(model=model, input_tokens=len(prompt) // 4 + 1, output_tokens=len(answer) // 4 + 1, images=images)

    # --- TextModel --------------------------------------------------------------------------------

    async def complete(self, request: TextRequest) -> TextResult:
        meta = await self._pause_and_maybe_fail("text", request.key)
        handler = getattr(self, f"_task_{request.task}", None)
        if request.task in sim_judging.TEXT_TASKS:  # the judging methods' tasks live in sim_judging
            handler = lambda v, rng: sim_judging.text_answer(request.task, v)  # noqa: E731
        if handler is None:
            raise RetryableError(f"the simulator has no answer for the task '{request.task}'")
        rng = world.stable_rng(self.seed, request.key, "answer")
        variables = sim_judging.critique_view(request.variables) if request.task == "critique" else request.variables
        answer = handler(variables, rng)
        text = answer if isinstance(answer, str) else json.dumps(answer)
        return TextResult(text=text, usage=self._usage("sim-text", request.system + request.user, text), meta=meta)

    def _task_expand_what(self, v: dict[str, Any], rng: Any) -> str:
        wanted = world.requirements(v["idea"])
        entities = []
        for entity in wanted.entities:
            if rng.random() < 0.7:
                color = entity.color if rng.random() < 0.7 else rng.choice(sorted(world.COLORS))
                entities.append(world.Entity(entity.name, entity.shape, color))
        for _ in range(rng.choice([0, 1, 1, 2])):
            name = rng.choice(sorted(world.OBJECTS))
            if all(e.name != name for e in entities):
                entities.append(world.Entity(name, world.OBJECTS[name][0], world.OBJECTS[name][1]))
        rng.shuffle(entities)
        scenes = [s for s in wanted.scenes if rng.random() < 0.65]
        return describe_what(entities, scenes)

    def _task_expand_how(self, v: dict[str, Any], rng: Any) -> str:
        terms: list[str] = []
        effects: set[str] = set()
        for term in rng.sample(sorted(world.STYLE_TERMS), k=rng.choice([2, 3, 3, 4])):
            if world.STYLE_TERMS[term] not in effects:
                terms.append(term)
                effects.add(world.STYLE_TERMS[term])
        return ", ".join(terms)

    def _task_combine(self, v: dict[str, Any], rng: Any) -> str:
        return f"{v['what'].rstrip('. ')}. Style: {v['how'].rstrip('. ')}."

    def _task_rephrase(self, v: dict[str, Any], rng: Any) -> str:
        words = [w for w in v["prompt"].split() if w.strip(".,").lower() not in self.settings.policy_words]
        return " ".join(words)

    def _task_critique(self, v: dict[str, Any], rng: Any) -> dict[str, Any]:
        suggestions: list[str] = []
        if v["dimension"] == "what":
            for item in v.get("missing", []):
                if rng.random() < 0.85:
                    phrase = item.split(" (")[0]
                    if phrase.startswith("scene: "):
                        suggestions.append(f"set the scene: {phrase.removeprefix('scene: ')}")
                    else:
                        suggestions.append(f"add a {phrase}")
            wanted = {e.name for e in world.requirements(v["idea"]).entities}
            for entity in world.parse(v["what"], pseudo=True).entities:
                if entity.name not in wanted and rng.random() < 0.5:
                    suggestions.append(f"remove the {entity.name}")
        else:
            effects = {world.STYLE_TERMS.get(t) for t in parse_how(v["how"])}
            for aspect in v.get("weak", []):
                if aspect in world.GOOD_STYLE_FIXES and rng.random() < 0.85:
                    suggestions.append(f"use {rng.choice(world.GOOD_STYLE_FIXES[aspect])}")
                    for term in parse_how(v["how"]):
                        if world.STYLE_TERMS.get(term) in world.STYLE_CONFLICTS[aspect]:
                            suggestions.append(f"drop {term}")
            if v.get("missing") and effects & {"grayscale", "contrast_down", "desaturate"}:
                for term in parse_how(v["how"]):
                    if world.STYLE_TERMS.get(term) in {"grayscale", "contrast_down", "desaturate"}:
                        suggestions.append(f"drop {term}")
        if not suggestions:
            suggestions.append("keep it, but make it more striking")
        what_or_how = "content" if v["dimension"] == "what" else "style"
        return {"critique": f"The {what_or_how} falls short: " + "; ".join(suggestions) + ".", "suggestions": suggestions}

    def _task_refine(self, v: dict[str, Any], rng: Any) -> str:
        suggestions = v.get("suggestions", [])
        if v["dimension"] == "what":
            parsed = world.parse(v["what"], pseudo=True)
            entities, scenes = list(parsed.entities), list(parsed.scenes)
            for s in suggestions:
                if rng.random() >= 0.85:
                    continue
                if s.startswith("add a "):
                    color, _, name = s.removeprefix("add a ").partition(" ")
                    shape = world.OBJECTS[name][0] if name in world.OBJECTS else world.pseudo_object(name)[0]
                    entities = [e for e in entities if e.name != name] + [world.Entity(name, shape, color)]
                elif s.startswith("remove the "):
                    entities = [e for e in entities if e.name != s.removeprefix("remove the ")]
                elif s.startswith("set the scene: "):
                    scene = s.removeprefix("set the scene: ")
                    kind = world.SCENES[scene][0]
                    scenes = [x for x in scenes if world.SCENES[x][0] != kind] + [scene]
            if rng.random() < 0.25 and entities:  # a refinement sometimes changes what it should not
                victim = rng.randrange(len(entities))
                e = entities[victim]
                entities[victim] = world.Entity(e.name, e.shape, rng.choice(sorted(world.COLORS)))
            return describe_what(entities, scenes)
        terms = parse_how(v["how"])
        for s in suggestions:
            if rng.random() >= 0.85:
                continue
            if s.startswith("use "):
                term = s.removeprefix("use ")
                effect = world.STYLE_TERMS.get(term)
                terms = [t for t in terms if world.STYLE_TERMS.get(t) != effect] + [term]
            elif s.startswith("drop "):
                terms = [t for t in terms if t != s.removeprefix("drop ")]
        if rng.random() < 0.25:
            terms.append(rng.choice(sorted(world.STYLE_TERMS)))
        return ", ".join(dict.fromkeys(terms)) or "natural light"

    # --- ImageModel -------------------------------------------------------------------------------

    async def generate(self, request: ImageRequest) -> ImageResult:
        meta = await self._pause_and_maybe_fail("image", request.key)
        lowered = request.prompt.lower()
        refused = [w for w in self.settings.policy_words if w in world.words_of(lowered)]
        if refused:
            raise ContentPolicyError(f"the simulated safety system refused the word '{refused[0]}'")
        data = await asyncio.to_thread(self._paint, request.prompt)
        usage = Usage(model="sim-image", input_tokens=len(request.prompt) // 4 + 1, images=1)
        return ImageResult(data=data, format="png", usage=usage, meta=meta)

    def _paint(self, prompt: str) -> bytes:
        image = world.render(prompt, self.settings.image_size, self.seed)
        buffer = io.BytesIO()
        image.save(buffer, "PNG", compress_level=1)
        return buffer.getvalue()

    # --- VisionModel ------------------------------------------------------------------------------

    async def judge(self, request: VisionRequest) -> TextResult:
        meta = await self._pause_and_maybe_fail("vision", request.key)
        if request.task in sim_judging.VISION_TASKS:
            return await sim_judging.judge(request, self.seed, self.settings, meta, self._usage)
        truth = await asyncio.to_thread(self._measure, request)
        rng = world.stable_rng(self.seed, request.key, "judge-noise")
        if request.task == "judge_alignment":
            # a 0-100 rating saturates high, as vision models' ratings do: the gap to 100 is squeezed
            # before the noise is added, so good and very good images become hard to tell apart
            squeezed = truth.alignment + self.settings.rating_saturation * (100.0 - truth.alignment)
            score = min(100.0, max(0.0, squeezed + rng.gauss(0, self.settings.alignment_noise)))
            answer = {"score": round(score), "found": truth.found, "missing": truth.missing,
                      "notes": "Missing: " + "; ".join(truth.missing) if truth.missing else "Everything asked for is visible."}
            meta["sim_truth"] = truth.alignment
        elif request.task == "judge_aesthetic":
            score = min(10.0, max(0.0, truth.aesthetic + rng.gauss(0, self.settings.aesthetic_noise)))
            answer = {"score": round(score, 1), "weak": truth.weak,
                      "notes": ("Weak: " + ", ".join(truth.weak)) if truth.weak else "Strong contrast, colour and balance."}
            meta["sim_truth"] = truth.aesthetic
            meta["sim_details"] = truth.details
        else:
            raise RetryableError(f"the simulator has no judge for the task '{request.task}'")
        text = json.dumps(answer)
        usage = self._usage("sim-vision", request.system + request.user, text)
        return TextResult(text=text, usage=Usage(**{**usage.__dict__, "image_input_tokens": 85 * len(request.images)}), meta=meta)

    def _measure(self, request: VisionRequest) -> world.Measurement:
        with Image.open(request.images[0]) as image:
            return world.measure(image, request.variables["idea"])
