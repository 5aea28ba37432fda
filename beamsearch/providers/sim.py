"""The offline simulator: a real provider for all three roles that needs no network and no key.

Every answer is deterministic from the run seed and the step key (and the attempt number, for injected
faults; and, for a judge, the picture it looks at), so a replayed or repeated run sees the same world.
Its images are painted from the prompt's words (`sim_world`), imperfectly as image models paint; its
judge measures those pixels against the user's idea (`sim_measure`, the hidden truth) and perceives them
with errors that shape its score and its notes alike (`sim_perception`); its text model knows only what a
real one would: the idea, the prompts and the judge's answer (`sim_writer`). It must never flatter the
search. Everything it produces is labelled as simulated.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from beamsearch.errors import ContentPolicyError, RetryableError
from beamsearch.providers import sim_judging, sim_writer
from beamsearch.providers import sim_world as world
from beamsearch.providers.base import ImageRequest, ImageResult, TextRequest, TextResult, Usage, VisionRequest
from beamsearch.providers.sim_measure import Measurement, measure_file
from beamsearch.providers.sim_perception import Look, perceive_aesthetic, perceive_alignment

SIM_LABEL = "simulator (offline; images and scores are simulated)"


def fidelity_of(sim: Any) -> world.Fidelity:
    return world.Fidelity(sim.colour_shade, sim.colour_miss_rate, sim.object_drop_rate)


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
        rng = world.stable_rng(self.seed, request.key, "answer")
        answer = self._answer(request.task, request.variables, rng)
        text = answer if isinstance(answer, str) else json.dumps(answer)
        return TextResult(text=text, usage=self._usage("sim-text", request.system + request.user, text), meta=meta)

    def _answer(self, task: str, v: dict[str, Any], rng: Any) -> str | dict[str, Any]:
        llm = self.settings.llm
        if task in sim_judging.TEXT_TASKS:  # the judging methods' tasks live in sim_judging
            return sim_judging.text_answer(task, v)
        if task == "expand_what":
            return sim_writer.expand_what(v["idea"], rng, llm)
        if task == "expand_how":
            return sim_writer.avoiding(lambda: sim_writer.expand_how(rng), v.get("avoid"))
        if task == "combine":
            return f"{v['what'].rstrip('. ')}. Style: {v['how'].rstrip('. ')}."
        if task == "rephrase":
            return " ".join(w for w in v["prompt"].split() if w.strip(".,").lower() not in self.settings.policy_words)
        if task == "critique":
            return sim_writer.critique(sim_judging.critique_view(v), rng, llm)
        if task == "refine":
            return sim_writer.avoiding(lambda: sim_writer.refine(v, rng, llm), v.get("avoid"),
                                       lambda text: sim_writer.vary(v["dimension"], text, rng))
        raise RetryableError(f"the simulator has no answer for the task '{task}'")

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
        image = world.render(prompt, self.settings.image_size, self.seed, fidelity_of(self.settings))
        buffer = io.BytesIO()
        image.save(buffer, "PNG", compress_level=1)
        return buffer.getvalue()

    # --- VisionModel ------------------------------------------------------------------------------

    async def judge(self, request: VisionRequest) -> TextResult:
        meta = await self._pause_and_maybe_fail("vision", request.key)
        if request.task in sim_judging.VISION_TASKS:
            return await sim_judging.judge(request, self.seed, self.settings, meta, self._usage)
        if request.task not in ("judge_alignment", "judge_aesthetic"):
            raise RetryableError(f"the simulator has no judge for the task '{request.task}'")
        truth, digest = await asyncio.to_thread(self._measure, request)
        answer = self._verdict(request, truth, Look(self.seed, digest, request.key), meta)
        text = json.dumps(answer)
        usage = self._usage("sim-vision", request.system + request.user, text)
        return TextResult(text=text, usage=Usage(**{**usage.__dict__, "image_input_tokens": 85 * len(request.images)}), meta=meta)

    def _verdict(self, request: VisionRequest, truth: Measurement, look: Look, meta: dict[str, Any]) -> dict[str, Any]:
        """The judge's answer from its perception of the truth, plus its random error; the truth and what
        a judge without random error would answer go to the metadata (never to the answer)."""
        sim = self.settings
        rng = world.stable_rng(self.seed, request.key, "judge-noise")
        meta["sim_image"] = Path(request.images[0]).name
        if request.task == "judge_alignment":
            # a 0-100 rating saturates high, as vision models' ratings do: the gap to 100 is squeezed
            # before the noise is added, so good and very good images become hard to tell apart
            perceived, expected, found, missing = perceive_alignment(truth, look, sim)
            squeezed = perceived + sim.rating_saturation * (100.0 - perceived)
            score = min(100.0, max(0.0, squeezed + rng.gauss(0, sim.alignment_noise)))
            meta["sim_truth"] = truth.alignment
            meta["sim_expected"] = round(expected + sim.rating_saturation * (100.0 - expected), 3)
            notes = "Missing: " + "; ".join(missing) if missing else "Everything asked for is visible."
            return {"score": round(score), "found": found, "missing": missing, "notes": notes}
        perceived, expected, weak = perceive_aesthetic(truth, look, sim)
        score = min(10.0, max(0.0, perceived + rng.gauss(0, sim.aesthetic_noise)))
        meta["sim_truth"] = truth.aesthetic
        meta["sim_expected"] = round(expected, 3)
        meta["sim_details"] = truth.details
        return {"score": round(score, 1), "weak": weak,
                "notes": ("Weak: " + ", ".join(weak)) if weak else "Strong contrast, colour and balance."}

    def _measure(self, request: VisionRequest) -> tuple[Measurement, str]:
        return measure_file(request.images[0], request.variables["idea"])
