"""The simulator: deterministic, real pictures, a judge that measures pixels, a critique that helps."""

from __future__ import annotations

import io
import json

from PIL import Image

from beamsearch.precedence import resolve
from beamsearch.providers import sim_world as world
from beamsearch.providers.base import ImageRequest, TextRequest, VisionRequest
from beamsearch.providers.sim import Simulator
from beamsearch.providers.sim_measure import measure

IDEA = "a red lighthouse and a yellow sun by the sea at night"


def simulator(seed: int = 0, **flags) -> Simulator:
    settings = resolve(None, {"provider": "sim", "sim.latency.text.mean": 0, "sim.latency.image.mean": 0,
                              "sim.latency.vision.mean": 0, "seed": seed, **flags}, environ={})
    return Simulator(settings.seed, settings.sim)


def text(task: str, key: str, **variables) -> TextRequest:
    return TextRequest(key=key, task=task, system="", user="", variables=variables)


async def test_answers_depend_only_on_seed_and_key() -> None:
    a, b, c = simulator(1), simulator(1), simulator(2)
    keys = [f"i0/c{j:02d}/expand_what" for j in range(8)]
    first = [(await a.complete(text("expand_what", k, idea=IDEA))).text for k in keys]
    again = [(await b.complete(text("expand_what", k, idea=IDEA))).text for k in keys]
    other = [(await c.complete(text("expand_what", k, idea=IDEA))).text for k in keys]
    assert first == again and first != other
    assert len(set(first)) > 1, "lanes differ from each other"


async def test_images_are_real_pngs_drawn_from_the_words() -> None:
    sim = simulator()
    result = await sim.generate(ImageRequest(key="k", prompt="A red lighthouse by the sea at night. Style: vignette"))
    assert result.format == "png"
    image = Image.open(io.BytesIO(result.data))
    assert image.size == (256, 256)
    colours = {tuple(image.getpixel((x, y))[:3]) for x in range(0, 256, 8) for y in range(0, 256, 8)}
    assert len(colours) > 3


def test_judge_measures_pixels_not_words() -> None:
    right = world.render("A red lighthouse and a yellow sun by the sea at night.", 256, 0)
    wrong_colour = world.render("A blue lighthouse and a yellow sun by the sea at night.", 256, 0)
    monochrome = world.render("A red lighthouse and a yellow sun by the sea at night. Style: monochrome", 256, 0)
    good, bad, grey = (measure(img, IDEA) for img in (right, wrong_colour, monochrome))
    assert good.alignment == 100 and not good.missing
    assert bad.alignment < good.alignment and "red lighthouse" in bad.missing
    assert grey.alignment < good.alignment and "colour" in grey.weak
    # a hand-painted picture with the right content is judged right, whatever text made it
    canvas = Image.new("RGB", (256, 256), (14, 20, 52))
    from PIL import ImageDraw

    draw = ImageDraw.Draw(canvas)
    draw.rectangle([0, 190, 256, 256], fill=(25, 70, 140))
    draw.rectangle([60, 60, 80, 110], fill=(215, 40, 40))
    draw.ellipse([150, 60, 200, 110], fill=(245, 215, 50))
    assert measure(canvas, IDEA).alignment == 100


async def scores_of(sim: Simulator, path, count: int = 20) -> tuple[list[float], float]:
    scores, truths = [], set()
    for j in range(count):
        answer = await sim.judge(VisionRequest(key=f"i0/c{j}/judge_alignment", task="judge_alignment", system="", user="",
                                               variables={"idea": IDEA}, images=(path,)))
        scores.append(json.loads(answer.text)["score"])
        truths.add(answer.meta["sim_truth"])
    assert len(truths) == 1
    return scores, truths.pop()


async def test_judge_is_noisy_around_the_truth_and_ratings_saturate_high(tmp_path) -> None:
    path = tmp_path / "x.png"
    world.render("A red lighthouse by the sea.", 256, 0).save(path)
    scores, truth = await scores_of(simulator(**{"sim.alignment_noise": 8, "sim.rating_saturation": 0}), path)
    assert len(set(scores)) > 3
    assert abs(sum(scores) / len(scores) - truth) < 8
    saturated, _ = await scores_of(simulator(**{"sim.alignment_noise": 8, "sim.rating_saturation": 0.5}), path)
    expected = truth + 0.5 * (100 - truth)
    assert abs(sum(saturated) / len(saturated) - expected) < 8 and min(saturated) > truth - 10


async def test_critique_names_what_is_missing_and_refine_acts_on_it() -> None:
    sim = simulator()
    what = "A blue lighthouse by the sea."
    critique = json.loads((await sim.complete(text(
        "critique", "i1/p-i0c00/critique", dimension="what", idea=IDEA, what=what, how="monochrome",
        missing=["red lighthouse", "yellow sun", "scene: night"], weak=[]))).text)
    assert any("red lighthouse" in s for s in critique["suggestions"])
    improved = []
    for j in range(10):
        refined = (await sim.complete(text("refine", f"i1/c{j:02d}/refine_what", dimension="what", what=what, how="",
                                          suggestions=critique["suggestions"]))).text
        image = world.render(refined, 256, 0)
        improved.append(measure(image, IDEA).alignment)
    before = measure(world.render(what, 256, 0), IDEA).alignment
    assert sum(improved) / len(improved) > before + 20


async def test_content_policy_and_transient_failures() -> None:
    sim = simulator(**{"sim.policy_words": ["gore"], "sim.failure_rate": 0.5})
    from beamsearch.errors import ContentPolicyError, RetryableError

    outcomes = []
    for j in range(20):
        try:
            await sim.complete(text("combine", f"k{j}", what="a", how="b"))
            outcomes.append("ok")
        except RetryableError:
            outcomes.append("fail")
    assert 3 < outcomes.count("fail") < 17
    refused = 0
    for j in range(5):
        try:
            await sim.generate(ImageRequest(key=f"img{j}", prompt="gore on a red boat"))
        except ContentPolicyError:
            refused += 1
        except RetryableError:
            pass
    assert refused >= 1


def test_every_style_renders_the_same_pixels_twice() -> None:
    for term in world.STYLE_TERMS:
        prompt = f"A red lighthouse and a yellow sun by the sea at night. Style: {term}."
        assert world.render(prompt, 128, 3).tobytes() == world.render(prompt, 128, 3).tobytes(), term
