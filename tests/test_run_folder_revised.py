"""A provider's revised prompt is kept with the image: in the step, the candidate and the PNG's chunks."""

from __future__ import annotations

import dataclasses

from simhelp import Timed, read_events, sim_settings

from beamsearch import pngmeta
from beamsearch.app import start_run
from beamsearch.providers.sim import Simulator


class Revising(Timed):
    async def generate(self, request):
        result = await super().generate(request)
        return dataclasses.replace(result, revised_prompt=f"revised: {request.prompt}")


async def test_revised_prompt_is_recorded_with_the_image(tmp_path) -> None:
    settings = sim_settings(tmp_path, n=2, m=1, iterations=1)
    result = await start_run(settings, providers=Revising(Simulator(settings.seed, settings.sim)).providers())
    candidates = [e for e in read_events(result.store.path) if e["type"] == "candidate"]
    candidate = [e for e in candidates if e["id"] == candidates[0]["id"]][-1]  # as last judged
    assert candidate["revised_prompt"] == f"revised: {candidate['prompt']}"
    chunks = pngmeta.read_text((result.store.path / candidate["image"]).read_bytes())
    assert chunks["beamsearch:revised_prompt"] == candidate["revised_prompt"]
    assert chunks["beamsearch:total"] == str(candidate["total"])  # the scores were added after, chunks kept
