"""The simulator's little world: which words draw what, how a prompt becomes pixels, and how pixels
are measured against an idea.

Rendering and measuring are deliberately separate. `render` reads a prompt and paints shapes; `measure`
never sees that prompt: it looks at the pixels and checks them against the requirements parsed from the
user's idea. So a candidate only scores well if its picture really shows what was asked, and style words
(monochrome, low contrast, ...) can spoil alignment as they would for a real image.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from dataclasses import dataclass, field

from PIL import Image, ImageChops, ImageDraw, ImageEnhance, ImageFilter

RGB = tuple[int, int, int]

COLORS: dict[str, RGB] = {
    "red": (215, 40, 40),
    "orange": (240, 140, 30),
    "yellow": (245, 215, 50),
    "green": (50, 165, 70),
    "blue": (40, 90, 220),
    "purple": (140, 60, 190),
    "pink": (240, 125, 185),
    "white": (246, 246, 246),
    "black": (18, 18, 18),
    "brown": (125, 75, 35),
    "teal": (25, 160, 160),
}
COLOR_ALIASES = {"grey": "gray", "golden": "yellow", "gold": "yellow", "crimson": "red", "scarlet": "red", "violet": "purple"}
COLORS["gray"] = (128, 128, 128)

# object -> (shape, canonical colour)
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
PLURALS = {name + "s": name for name in OBJECTS} | {"boxes": "box", "benches": "bench"}

# scene word -> (kind, colour): "sky" colours the background, "ground" a band at the bottom
SCENES: dict[str, tuple[str, RGB]] = {
    "night": ("sky", (14, 20, 52)), "storm": ("sky", (58, 62, 74)), "stormy": ("sky", (58, 62, 74)),
    "sunset": ("sky", (235, 135, 85)), "dawn": ("sky", (235, 175, 150)), "day": ("sky", (140, 195, 240)),
    "snow": ("sky", (232, 238, 244)), "space": ("sky", (6, 6, 14)), "fog": ("sky", (180, 182, 186)),
    "sea": ("ground", (25, 70, 140)), "ocean": ("ground", (25, 70, 140)), "lake": ("ground", (40, 100, 150)),
    "field": ("ground", (80, 140, 50)), "meadow": ("ground", (80, 140, 50)), "grass": ("ground", (80, 140, 50)),
    "desert": ("ground", (215, 185, 120)), "beach": ("ground", (225, 200, 140)), "road": ("ground", (70, 70, 72)),
}
SCENE_CANONICAL = {"stormy": "storm", "ocean": "sea", "meadow": "field", "grass": "field"}
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
GOOD_STYLE_FIXES = {
    "contrast": ["high contrast", "dramatic lighting", "chiaroscuro"],
    "colour": ["vibrant palette", "vivid colours", "saturated colours"],
    "balance": ["centered composition", "rule of thirds", "symmetrical composition"],
    "focus": ["vignette", "crisp detail"],
}
STYLE_CONFLICTS = {
    "contrast": {"contrast_down"}, "colour": {"grayscale", "desaturate"}, "balance": {"scattered"}, "focus": set(),
}
STOPWORDS = set(
    "a an the and or of in on at with by for to from under over into onto near beside behind above below "
    "its it is are be this that these those very some many one two three four five six seven eight nine ten "
    "scene image picture photo style showing shows shown set against while where which who has have having "
    "made like as during through across around beneath lit painted rendered drawn there their them his her "
    "small large big tiny huge little single lone".split()
)

SHAPES = {  # shape -> (fill ratio of its bounding box, width / height)
    "circle": (math.pi / 4, 1.0), "square": (1.0, 1.0), "triangle": (0.5, 1.0), "tower": (1.0, 0.4), "bar": (1.0, 2.5),
}


def stable_rng(*parts: object) -> random.Random:
    """A random generator that depends only on its arguments, never on process or time."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def pseudo_object(word: str) -> tuple[str, str]:
    """A made-up word still draws something: its shape and colour follow from its letters."""
    rng = stable_rng("pseudo", word)
    return rng.choice(sorted(SHAPES)), rng.choice(sorted(COLORS))


@dataclass(frozen=True)
class Entity:
    name: str
    shape: str
    color: str

    def phrase(self) -> str:
        return f"{self.color} {self.name}"


@dataclass
class Parsed:
    """What a text asks for: objects with their colours, scene words, style effects."""

    entities: list[Entity] = field(default_factory=list)
    scenes: list[str] = field(default_factory=list)
    effects: list[str] = field(default_factory=list)
    style_terms: list[str] = field(default_factory=list)


_WORD = re.compile(r"[a-z][a-z'-]*")


def words_of(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def color_word(word: str) -> str | None:
    word = COLOR_ALIASES.get(word, word)
    return word if word in COLORS else None


def parse(text: str, pseudo: bool = False) -> Parsed:
    """Read objects (a colour word up to two words before an object names its colour), scenes and
    style terms from text. With `pseudo`, unknown content words become objects too (for user ideas
    that use no word of the simulator's vocabulary)."""
    lowered = text.lower()
    out = Parsed()
    for term, effect in STYLE_TERMS.items():
        if term in lowered:
            out.style_terms.append(term)
            out.effects.append(effect)
    words = words_of(lowered)
    seen: set[str] = set()
    style_words = {w for term in STYLE_TERMS for w in term.split()}
    for i, word in enumerate(words):
        base = PLURALS.get(word, word)
        if base in SCENES:
            canonical = SCENE_CANONICAL.get(base, base)
            if canonical not in out.scenes:
                out.scenes.append(canonical)
            continue
        if base in OBJECTS:
            shape, color = OBJECTS[base]
        elif pseudo and len(base) >= 4 and base not in STOPWORDS and not color_word(base) and base not in style_words:
            shape, color = pseudo_object(base)
        else:
            continue
        for back in (1, 2):
            if i - back >= 0 and (found := color_word(words[i - back])):
                color = found
                break
        if base not in seen:
            seen.add(base)
            out.entities.append(Entity(base, shape, color))
    return out


def requirements(idea: str) -> Parsed:
    """What the user's idea asks for, as the judge understands it."""
    parsed = parse(idea)
    if not parsed.entities:
        parsed.entities = parse(idea, pseudo=True).entities[:3]
    return parsed


# --- rendering ------------------------------------------------------------------------------------


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


def render(prompt: str, size: int, seed: object) -> Image.Image:
    """Paint the prompt: sky, ground band, one shape per object, then the style's effects."""
    parsed = parse(prompt)
    rng = stable_rng("render", seed, prompt)
    sky = next((SCENES[s][1] for s in parsed.scenes if SCENES[s][0] == "sky"), DEFAULT_SKY)
    image = Image.new("RGB", (size, size), sky)
    draw = ImageDraw.Draw(image)
    ground = next((SCENES[s][1] for s in parsed.scenes if SCENES[s][0] == "ground"), None)
    if ground is not None:
        draw.rectangle([0, int(size * 0.72), size, size], fill=ground)
    entities = parsed.entities[:11]
    balanced = "balanced" in parsed.effects and "scattered" not in parsed.effects
    obj_size = size * (0.2 if len(entities) <= 4 else 0.15)
    for entity, (x, y) in zip(entities, _slots(len(entities), balanced, rng), strict=False):
        _draw_shape(draw, entity.shape, x * size, y * size, obj_size, COLORS[entity.color])
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


# --- measuring ------------------------------------------------------------------------------------

MEASURE_SIDE = 96


@dataclass
class Measurement:
    """The truth about one picture against one idea. Scores: alignment 0-100, aesthetic 0-10."""

    alignment: float
    aesthetic: float
    found: list[str]
    missing: list[str]
    weak: list[str]
    details: dict[str, float]


def _colour_mask(image: Image.Image, color: RGB, tolerance: int = 62) -> Image.Image:
    diff = ImageChops.difference(image, Image.new("RGB", image.size, color))
    r, g, b = diff.split()
    worst = ImageChops.lighter(ImageChops.lighter(r, g), b)
    return worst.point(lambda v: 255 if v < tolerance else 0)


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


def measure(image: Image.Image, idea: str) -> Measurement:
    """Check the pixels against the idea: objects (colour present, right shape), scene (sky and
    ground colours), and for aesthetics contrast, colourfulness, balance and clutter."""
    small = image.convert("RGB").resize((MEASURE_SIDE, MEASURE_SIDE), Image.Resampling.BILINEAR)
    wanted = requirements(idea)
    found, missing = [], []
    points, total = 0.0, 0.0
    for entity in wanted.entities:
        total += 1
        shape, area = _shape_of(_colour_mask(small, COLORS[entity.color]))
        if shape is None:
            missing.append(entity.phrase())
        elif shape != entity.shape:
            points += 0.4
            missing.append(f"{entity.phrase()} (a {entity.color} shape is there, but it does not read as a {entity.name})")
        else:
            points += 1
            found.append(entity.phrase())
    sky_colour = small.crop((0, 0, MEASURE_SIDE, 6)).resize((1, 1), Image.Resampling.BOX).getpixel((0, 0))
    ground_colour = small.crop((0, MEASURE_SIDE - 8, MEASURE_SIDE, MEASURE_SIDE)).resize((1, 1), Image.Resampling.BOX).getpixel((0, 0))
    for scene in wanted.scenes:
        total += 0.6
        kind, colour = SCENES[scene]
        seen = sky_colour if kind == "sky" else ground_colour
        distance = max(abs(a - b) for a, b in zip(seen, colour, strict=True))
        if distance < 80:
            points += 0.6
            found.append(f"scene: {scene}")
        else:
            missing.append(f"scene: {scene}")
    alignment = 100.0 * points / total if total else 50.0

    aesthetic, weak, details = _aesthetic(small, sky_colour)
    return Measurement(
        alignment=round(alignment, 2),
        aesthetic=round(aesthetic, 3),
        found=found,
        missing=missing,
        weak=weak,
        details=details,
    )


def _aesthetic(small: Image.Image, sky_colour: tuple[int, ...]) -> tuple[float, list[str], dict[str, float]]:
    """Contrast, colourfulness, balance and clutter of a picture: its aesthetic 0-10 and its weak aspects."""
    weak: list[str] = []
    gray = small.convert("L")
    hist = gray.histogram()
    count = sum(hist)
    mean = sum(i * h for i, h in enumerate(hist)) / count
    std = math.sqrt(sum(h * (i - mean) ** 2 for i, h in enumerate(hist)) / count)
    contrast = min(1.0, std / 70.0)
    sat_hist = small.convert("HSV").split()[1].histogram()
    colourful = min(1.0, (sum(i * h for i, h in enumerate(sat_hist)) / count) / 150.0)
    background = Image.new("RGB", small.size, sky_colour)
    mass = ImageChops.difference(small, background).convert("L").resize((16, 16), Image.Resampling.BOX)
    values = list(mass.tobytes())
    weight = sum(values) or 1
    cx = sum((i % 16 + 0.5) * v for i, v in enumerate(values)) / weight / 16
    cy = sum((i // 16 + 0.5) * v for i, v in enumerate(values)) / weight / 16
    balance = max(0.0, 1.0 - math.hypot(cx - 0.5, 0.5 * (cy - 0.5)) / 0.25)
    clutter = max(0, len(parse_visible(small)) - 5) * 0.08
    aesthetic = 10.0 * max(0.0, min(1.0, 0.38 * contrast + 0.32 * colourful + 0.30 * balance - clutter))
    for name, value, limit in (("contrast", contrast, 0.55), ("colour", colourful, 0.45), ("balance", balance, 0.6)):
        if value < limit:
            weak.append(name)
    if clutter > 0:
        weak.append("clutter")
    return aesthetic, weak, {"contrast": round(contrast, 3), "colour": round(colourful, 3), "balance": round(balance, 3)}


def parse_visible(image: Image.Image) -> list[str]:
    """Which palette colours cover a visible share of the picture (a proxy for how busy it is)."""
    return [name for name, colour in COLORS.items() if _colour_mask(image, colour, 40).histogram()[255] > image.width * image.height * 0.01]
