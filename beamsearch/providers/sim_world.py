"""The simulator's little world: how things look, and how a prompt becomes pixels.

The painter reads a prompt through the simulator's English (`sim_language`) and paints a shape per
thing: a thing it has a drawing for (a lighthouse is a tall white tower) in its own form, and any other
noun as a glyph whose shape and colour follow from the word, so every idea can be painted and judged.
Like a real image model it is not exact: a named colour comes out as a shade of it (a deterministic
shade per prompt), now and then as another colour of the prompt (attribute leakage), and now and then a
thing is left out; the rates are the simulator's settings (`sim.colour_shade`, `sim.colour_miss_rate`,
`sim.object_drop_rate`). How pixels are measured against an idea is `sim_measure`'s business.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass, field

from PIL import Image, ImageChops, ImageDraw, ImageEnhance, ImageFilter

from beamsearch.providers import sim_language as lang

RGB = tuple[int, int, int]

COLORS: dict[str, RGB] = {
    "red": (215, 40, 40), "orange": (240, 140, 30), "yellow": (245, 215, 50), "green": (50, 165, 70),
    "blue": (40, 90, 220), "purple": (140, 60, 190), "pink": (240, 125, 185), "white": (246, 246, 246),
    "black": (18, 18, 18), "brown": (125, 75, 35), "teal": (25, 160, 160), "gray": (128, 128, 128),
}
assert set(COLORS) == set(lang.COLOUR_NAMES)

# thing -> (shape, its own colour): the things the painter has a drawing for
OBJECTS: dict[str, tuple[str, str]] = {
    "sun": ("circle", "yellow"), "moon": ("circle", "white"), "ball": ("circle", "red"),
    "apple": ("circle", "red"), "planet": ("circle", "teal"), "orb": ("circle", "purple"),
    "flower": ("circle", "pink"), "balloon": ("circle", "red"),
    "lighthouse": ("tower", "white"), "tower": ("tower", "gray"), "bottle": ("tower", "green"),
    "candle": ("tower", "white"), "rocket": ("tower", "white"), "person": ("tower", "blue"),
    "house": ("square", "brown"), "box": ("square", "brown"), "window": ("square", "yellow"),
    "book": ("square", "blue"), "cube": ("square", "purple"), "robot": ("square", "gray"),
    "tree": ("triangle", "green"), "mountain": ("triangle", "gray"), "tent": ("triangle", "orange"),
    "pyramid": ("triangle", "yellow"), "sail": ("triangle", "white"), "fox": ("triangle", "orange"),
    "boat": ("bar", "brown"), "car": ("bar", "red"), "train": ("bar", "black"), "bridge": ("bar", "gray"),
    "whale": ("bar", "blue"), "cat": ("bar", "black"), "dog": ("bar", "brown"), "bench": ("bar", "brown"),
}

# setting -> (kind, colour): "sky" colours the background, "ground" a band at the bottom
SCENES: dict[str, tuple[str, RGB]] = {
    "night": ("sky", (14, 20, 52)), "storm": ("sky", (58, 62, 74)), "sunset": ("sky", (235, 135, 85)),
    "dawn": ("sky", (235, 175, 150)), "day": ("sky", (140, 195, 240)), "snow": ("sky", (232, 238, 244)),
    "space": ("sky", (6, 6, 14)), "fog": ("sky", (180, 182, 186)),
    "sea": ("ground", (25, 70, 140)), "lake": ("ground", (40, 100, 150)), "field": ("ground", (80, 140, 50)),
    "desert": ("ground", (215, 185, 120)), "beach": ("ground", (225, 200, 140)), "road": ("ground", (70, 70, 72)),
}
assert set(SCENES) == set(lang.SCENE_WORDS.values())
DEFAULT_SKY: RGB = (118, 124, 134)

STYLE_TERMS: dict[str, str] = {
    # term -> the effect it has on rendering
    "high contrast": "contrast_up", "dramatic lighting": "contrast_up", "chiaroscuro": "contrast_up",
    "low contrast": "contrast_down", "hazy": "contrast_down", "flat lighting": "contrast_down",
    "vibrant palette": "saturate", "saturated colours": "saturate", "vivid colours": "saturate",
    "muted palette": "desaturate", "pastel palette": "desaturate",
    "monochrome": "grayscale", "black and white": "grayscale",
    "centered composition": "balanced", "symmetrical composition": "balanced", "rule of thirds": "balanced",
    "balanced composition": "balanced", "off-center composition": "scattered", "chaotic composition": "scattered",
    "golden hour": "warm", "warm light": "warm", "cool light": "cool", "moonlight": "cool",
    "soft light": "soften", "watercolor": "soften", "oil painting": "texture", "grainy film": "texture",
    "pixel art": "pixelate", "vignette": "vignette", "photorealistic": "sharpen", "crisp detail": "sharpen",
}
assert set(STYLE_TERMS) == set(lang.STYLE_VOCABULARY)
assert all(w in lang.STYLE_WORDS or lang.colour_of(w) or w in lang.STOPWORDS
           for term in STYLE_TERMS for w in lang.words_of(term))

SHAPES = {  # shape -> (fill ratio of its bounding box, width / height)
    "circle": (math.pi / 4, 1.0), "square": (1.0, 1.0), "triangle": (0.5, 1.0), "tower": (1.0, 0.4), "bar": (1.0, 2.5),
}


def stable_rng(*parts: object) -> random.Random:
    """A random generator that depends only on its arguments, never on process or time."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def glyph(word: str) -> tuple[str, str]:
    """How a thing the painter has no drawing for looks: a shape and a colour that follow from the word
    alone (the same in every run), so the judge can look for it as for any other thing."""
    rng = stable_rng("glyph", word)
    return rng.choice(sorted(SHAPES)), rng.choice(sorted(COLORS))


def look_of(noun: str) -> tuple[str, str]:
    """A thing's shape and own colour: its drawing, or its glyph."""
    return OBJECTS.get(noun) or glyph(noun)


@dataclass(frozen=True)
class Entity:
    """A thing in a text: its name, its shape, its colour (the one said, or its own), and the colour word
    as the text said it (None when the text gave no colour)."""

    name: str
    shape: str
    color: str
    said: str | None = None

    def phrase(self) -> str:
        """The thing as the text names it: 'golden kite', or 'kite' when no colour was said."""
        return f"{self.said} {self.name}" if self.said else self.name


@dataclass
class Parsed:
    """What a text asks for: things with their colours, settings, style effects."""

    entities: list[Entity] = field(default_factory=list)
    scenes: list[str] = field(default_factory=list)
    effects: list[str] = field(default_factory=list)
    style_terms: list[str] = field(default_factory=list)


def words_of(text: str) -> list[str]:
    return lang.words_of(text)


def parse(text: str) -> Parsed:
    """Read the things (every noun; a colour word before it names its colour), settings and style terms."""
    lowered = text.lower()
    out = Parsed(scenes=lang.scenes(lowered))
    for term, effect in STYLE_TERMS.items():
        if term in lowered:
            out.style_terms.append(term)
            out.effects.append(effect)
    for phrase in lang.phrases(lowered):
        shape, colour = look_of(phrase.noun)
        said = lang.colour_of(phrase.colour_word) if phrase.colour_word else None
        out.entities.append(Entity(phrase.noun, shape, said or colour, phrase.colour_word))
    return out


def requirements(idea: str) -> Parsed:
    """What the user's idea asks for, as the truth counts it: its things and its settings."""
    return parse(idea)


# --- rendering ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fidelity:
    """How far the painter strays from the prompt (see the module docstring); all zero paints exactly."""

    shade: float = 0.0
    colour_miss_rate: float = 0.0
    drop_rate: float = 0.0


def painted_colour(entity: Entity, others: list[Entity], seed: object, prompt: str, fidelity: Fidelity) -> RGB:
    """The colour a thing comes out in: its colour, or now and then another colour of the prompt (or any
    other), then shaded by up to `fidelity.shade` per channel."""
    rng = stable_rng("colour", seed, prompt, entity.name)
    name = entity.color
    if rng.random() < fidelity.colour_miss_rate:
        leaked = sorted({e.color for e in others if e.color != entity.color})
        name = rng.choice(leaked or sorted(set(COLORS) - {entity.color}))
    shade = [rng.uniform(-fidelity.shade, fidelity.shade) for _ in range(3)]
    r, g, b = (min(255, max(0, round(c + d))) for c, d in zip(COLORS[name], shade, strict=True))
    return (r, g, b)


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, size: float, fill: RGB) -> None:
    if shape == "circle":
        draw.ellipse([cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2], fill=fill)
    elif shape == "square":
        draw.rectangle([cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2], fill=fill)
    elif shape == "triangle":
        draw.polygon([(cx, cy - size / 2), (cx - size / 2, cy + size / 2), (cx + size / 2, cy + size / 2)], fill=fill)
    elif shape == "tower":
        draw.rectangle([cx - size * 0.2, cy - size / 2, cx + size * 0.2, cy + size / 2], fill=fill)
    elif shape == "bar":
        draw.rectangle([cx - size / 2, cy - size * 0.2, cx + size / 2, cy + size * 0.2], fill=fill)


def _slots(count: int, balanced: bool, rng: random.Random) -> list[tuple[float, float]]:
    """Object centres in a unit square, one per object, never overlapping."""
    grid = [(x, y) for y in (0.3, 0.55) for x in (0.2, 0.4, 0.6, 0.8)] + [(x, 0.8) for x in (0.2, 0.5, 0.8)]
    if balanced:
        ordered = {1: [(0.5, 0.5)], 2: [(0.33, 0.5), (0.67, 0.5)], 3: [(0.25, 0.5), (0.5, 0.42), (0.75, 0.5)],
                   4: [(0.3, 0.35), (0.7, 0.35), (0.3, 0.68), (0.7, 0.68)]}
        if count in ordered:
            return ordered[count]
        return [grid[i] for i in range(min(count, len(grid)))]
    # unbalanced: pack towards one side, as an unguided picture often is
    side = rng.choice([(0.2, 0.4), (0.6, 0.8)])
    picks = [p for p in grid if side[0] <= p[0] <= side[1]] + [p for p in grid if not side[0] <= p[0] <= side[1]]
    jitter = [(x + rng.uniform(-0.04, 0.04), y + rng.uniform(-0.04, 0.04)) for x, y in picks]
    return jitter[:count]


def render(prompt: str, size: int, seed: object, fidelity: Fidelity | None = None) -> Image.Image:
    """Paint the prompt: sky, ground band, one shape per thing (some left out, colours as the painter
    gets them), then the style's effects. Without `fidelity` it paints exactly what the prompt says."""
    fidelity = fidelity or Fidelity()
    parsed = parse(prompt)
    rng = stable_rng("render", seed, prompt)
    sky = next((SCENES[s][1] for s in parsed.scenes if SCENES[s][0] == "sky"), DEFAULT_SKY)
    image = Image.new("RGB", (size, size), sky)
    draw = ImageDraw.Draw(image)
    ground = next((SCENES[s][1] for s in parsed.scenes if SCENES[s][0] == "ground"), None)
    if ground is not None:
        draw.rectangle([0, int(size * 0.72), size, size], fill=ground)
    named = parsed.entities[:11]
    entities = [e for e in named if stable_rng("drop", seed, prompt, e.name).random() >= fidelity.drop_rate]
    balanced = "balanced" in parsed.effects and "scattered" not in parsed.effects
    obj_size = size * (0.2 if len(entities) <= 4 else 0.15)
    for entity, (x, y) in zip(entities, _slots(len(entities), balanced, rng), strict=False):
        _draw_shape(draw, entity.shape, x * size, y * size, obj_size, painted_colour(entity, named, seed, prompt, fidelity))
    return apply_effects(image, parsed.effects)


def apply_effects(image: Image.Image, effects: list[str]) -> Image.Image:
    size = image.width
    if "warm" in effects:
        image = Image.blend(image, Image.new("RGB", image.size, (255, 170, 60)), 0.12)
    if "cool" in effects:
        image = Image.blend(image, Image.new("RGB", image.size, (60, 120, 255)), 0.12)
    if "contrast_up" in effects:
        image = ImageEnhance.Contrast(image).enhance(1.35)
    if "contrast_down" in effects:
        image = ImageEnhance.Contrast(image).enhance(0.45)
    if "saturate" in effects:
        image = ImageEnhance.Color(image).enhance(1.3)
    if "desaturate" in effects:
        image = ImageEnhance.Color(image).enhance(0.45)
    if "grayscale" in effects:
        image = image.convert("L").convert("RGB")
    if "soften" in effects:
        image = image.filter(ImageFilter.GaussianBlur(radius=max(1, size // 128)))
    if "sharpen" in effects:
        image = image.filter(ImageFilter.SHARPEN)
    if "texture" in effects:
        # Pillow's effect_noise draws from C's rand(): not reproducible, so make the grain from our own seed
        tile = max(8, size // 4)
        grain = Image.frombytes("L", (tile, tile), stable_rng("grain", size).randbytes(tile * tile))
        noise = grain.resize(image.size, Image.Resampling.NEAREST).convert("RGB")
        image = Image.blend(image, ImageChops.overlay(image, noise), 0.25)
    if "pixelate" in effects:
        small = max(8, size // 16)
        image = image.resize((small, small), Image.Resampling.BILINEAR).resize(image.size, Image.Resampling.NEAREST)
    if "vignette" in effects:
        mask = Image.radial_gradient("L").resize(image.size)
        image = Image.composite(Image.new("RGB", image.size, (0, 0, 0)), image, mask.point(lambda v: int(v * 0.55)))
    return image
