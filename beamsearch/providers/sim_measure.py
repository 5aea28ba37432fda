"""The simulator's truth: a picture's pixels measured against the user's idea.

`measure` never sees the prompt that made the picture: it looks for each thing the idea names by its
colour (the one said, or the thing's own) and checks that blob's form, checks the sky and ground for the
idea's settings, and rates contrast, colourfulness, balance and clutter. This truth is hidden from every
simulated model: the judge perceives it with errors (`sim_perception`), the text models never read it.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageChops, ImageFilter

from beamsearch.providers.sim_world import COLORS, RGB, SCENES, SHAPES, requirements

MEASURE_SIDE = 96
ENTITY_WEIGHT, SCENE_WEIGHT, WRONG_FORM_CREDIT = 1.0, 0.6, 0.4
ASPECT_WEIGHTS = {"contrast": 0.38, "colour": 0.32, "balance": 0.30}
ASPECT_LIMITS = {"contrast": 0.55, "colour": 0.45, "balance": 0.6}  # below its limit an aspect is weak
CLUTTER_FREE, CLUTTER_STEP = 5, 0.08  # each visible palette colour beyond five costs 0.08 of the aesthetic


@dataclass(frozen=True)
class Element:
    """One thing or setting the idea asks for, and how much of it the picture shows (`credit` out of
    `weight`: a thing in its colour but the wrong form earns 0.4 of 1)."""

    label: str
    kind: str  # "entity" or "scene"
    weight: float
    credit: float
    note: str = ""

    @property
    def full(self) -> bool:
        return self.credit >= self.weight

    def missing_text(self) -> str:
        return f"{self.label} ({self.note})" if self.note else self.label


@dataclass
class Measurement:
    """The truth about one picture against one idea. Scores: alignment 0-100, aesthetic 0-10."""

    alignment: float
    aesthetic: float
    found: list[str]
    missing: list[str]
    weak: list[str]
    details: dict[str, float]
    elements: list[Element] = field(default_factory=list)
    clutter: float = 0.0


def _colour_mask(image: Image.Image, color: RGB, tolerance: int = 62) -> Image.Image:
    """The pixels near a colour, without the one-pixel lines and rings where two other colours blend (the
    edge of a yellow sun on a night sky is brown for a pixel): a person sees no brown thing there."""
    diff = ImageChops.difference(image, Image.new("RGB", image.size, color))
    r, g, b = diff.split()
    worst = ImageChops.lighter(ImageChops.lighter(r, g), b)
    mask = worst.point(lambda v: 255 if v < tolerance else 0)
    return mask.filter(ImageFilter.MedianFilter(3))


def _shape_of(mask: Image.Image) -> tuple[str | None, float]:
    """The shape whose fill ratio and aspect best fit the mask's bounding box, and the mask's area."""
    box = mask.getbbox()
    area = mask.histogram()[255] / (mask.width * mask.height)
    if box is None or area < 0.004:
        return None, area
    width, height = box[2] - box[0], box[3] - box[1]
    fill = mask.crop(box).histogram()[255] / max(1, width * height)
    aspect = width / max(1, height)
    best = min(SHAPES, key=lambda s: abs(SHAPES[s][0] - fill) + abs(math.log(SHAPES[s][1]) - math.log(aspect)) * 0.6)
    return best, area


def shrink(image: Image.Image) -> Image.Image:
    return image.convert("RGB").resize((MEASURE_SIDE, MEASURE_SIDE), Image.Resampling.BILINEAR)


def band_colours(small: Image.Image) -> tuple[RGB, RGB]:
    """The mean colour of the top rows (the sky) and of the bottom rows (the ground)."""
    sky = small.crop((0, 0, MEASURE_SIDE, 6)).resize((1, 1), Image.Resampling.BOX).getpixel((0, 0))
    ground = small.crop((0, MEASURE_SIDE - 8, MEASURE_SIDE, MEASURE_SIDE)).resize((1, 1), Image.Resampling.BOX).getpixel((0, 0))
    return sky, ground  # type: ignore[return-value]


def elements_of(small: Image.Image, idea: str) -> list[Element]:
    """Each thing and setting of the idea, with the credit the pixels earn it."""
    wanted = requirements(idea)
    out = []
    for entity in wanted.entities:
        shape, _ = _shape_of(_colour_mask(small, COLORS[entity.color]))
        if shape is None:
            out.append(Element(entity.phrase(), "entity", ENTITY_WEIGHT, 0.0))
        elif shape != entity.shape:
            out.append(Element(entity.phrase(), "entity", ENTITY_WEIGHT, WRONG_FORM_CREDIT,
                               f"a {entity.color} shape is there, but it does not read as a {entity.name}"))
        else:
            out.append(Element(entity.phrase(), "entity", ENTITY_WEIGHT, ENTITY_WEIGHT))
    sky, ground = band_colours(small)
    for scene in wanted.scenes:
        kind, colour = SCENES[scene]
        seen = sky if kind == "sky" else ground
        near = max(abs(a - b) for a, b in zip(seen, colour, strict=True)) < 80
        out.append(Element(f"scene: {scene}", "scene", SCENE_WEIGHT, SCENE_WEIGHT if near else 0.0))
    return out


def alignment_of(elements: list[Element], credits: list[float] | None = None) -> float:
    """Alignment 0-100: the credit earned over the weight asked for (50 when the idea asks for nothing)."""
    total = sum(e.weight for e in elements)
    earned = sum(credits if credits is not None else [e.credit for e in elements])
    return 100.0 * earned / total if total else 50.0


def aspects_of(small: Image.Image) -> tuple[dict[str, float], float]:
    """Contrast, colourfulness and balance (each 0-1), and the clutter penalty."""
    gray = small.convert("L")
    hist = gray.histogram()
    count = sum(hist)
    mean = sum(i * h for i, h in enumerate(hist)) / count
    std = math.sqrt(sum(h * (i - mean) ** 2 for i, h in enumerate(hist)) / count)
    sat_hist = small.convert("HSV").split()[1].histogram()
    colourful = min(1.0, (sum(i * h for i, h in enumerate(sat_hist)) / count) / 150.0)
    sky, _ = band_colours(small)
    mass = ImageChops.difference(small, Image.new("RGB", small.size, sky)).convert("L").resize((16, 16), Image.Resampling.BOX)
    values = list(mass.tobytes())
    weight = sum(values) or 1
    cx = sum((i % 16 + 0.5) * v for i, v in enumerate(values)) / weight / 16
    cy = sum((i // 16 + 0.5) * v for i, v in enumerate(values)) / weight / 16
    balance = max(0.0, 1.0 - math.hypot(cx - 0.5, 0.5 * (cy - 0.5)) / 0.25)
    clutter = max(0, len(parse_visible(small)) - CLUTTER_FREE) * CLUTTER_STEP
    return {"contrast": min(1.0, std / 70.0), "colour": colourful, "balance": balance}, clutter


def aesthetic_of(aspects: dict[str, float], clutter: float) -> float:
    """Aesthetic 0-10 from the aspects and the clutter penalty."""
    return 10.0 * max(0.0, min(1.0, sum(ASPECT_WEIGHTS[a] * aspects[a] for a in ASPECT_WEIGHTS) - clutter))


def weak_of(aspects: dict[str, float], clutter: float) -> list[str]:
    weak = [a for a in ASPECT_WEIGHTS if aspects[a] < ASPECT_LIMITS[a]]
    return weak + (["clutter"] if clutter > 0 else [])


def measure(image: Image.Image, idea: str) -> Measurement:
    """Check the pixels against the idea: things (colour present, right form) and settings (sky and
    ground colours); for aesthetics contrast, colourfulness, balance and clutter."""
    small = shrink(image)
    elements = elements_of(small, idea)
    aspects, clutter = aspects_of(small)
    return Measurement(
        alignment=round(alignment_of(elements), 2),
        aesthetic=round(aesthetic_of(aspects, clutter), 3),
        found=[e.label for e in elements if e.full],
        missing=[e.missing_text() for e in elements if not e.full],
        weak=weak_of(aspects, clutter),
        details={name: round(value, 3) for name, value in aspects.items()},
        elements=elements,
        clutter=clutter,
    )


def measure_file(path: Path, idea: str) -> tuple[Measurement, str]:
    """The truth about a picture on disk, and a digest of its pixels (what makes two looks at one picture
    the same picture however it is stored)."""
    with Image.open(path) as image:
        image.load()
        digest = hashlib.sha256(image.convert("RGB").tobytes()).hexdigest()[:16]
        return measure(image, idea), digest


def parse_visible(image: Image.Image) -> list[str]:
    """Which palette colours cover a visible share of the picture (a proxy for how busy it is)."""
    return [name for name, colour in COLORS.items() if _colour_mask(image, colour, 40).histogram()[255] > image.width * image.height * 0.01]
