"""The simulator's text model: expansion, critique and refinement, knowing only what a real LLM would.

It reads the idea, the prompts and the judge's answer as text, through the simulator's English
(`sim_language`), and nothing else: never the truth's requirements, its colour values, or how the
aesthetic truth is computed. What it knows about style is general advice (a flat picture wants
contrast, a grey one colour), sound only at `sim.llm.style_advice_accuracy`; otherwise it proposes some
other style term, which may help, do nothing or backfire. Every other habit (how often it keeps what the
idea names, follows a suggestion, changes what it should not) is a rate in `sim.llm`.
"""

from __future__ import annotations

import random
from typing import Any

from beamsearch.providers import sim_language as lang

SKY_PHRASES = {"night": "at night", "storm": "in a storm", "sunset": "at sunset", "dawn": "at dawn",
               "day": "on a clear day", "snow": "in the snow", "space": "in deep space", "fog": "in thick fog"}
GROUND_PHRASES = {"sea": "by the sea", "lake": "by a lake", "field": "in a field", "desert": "in the desert",
                  "beach": "on a beach", "road": "on a road"}
SKIES = set(SKY_PHRASES)
# Things an embellishing expansion likes to add; a writer's stock of scenery, not the painter's table.
EMBELLISHMENTS = ("sun", "moon", "tree", "boat", "house", "mountain", "bird", "cloud", "flower", "bench", "lantern")
# General style advice, as any art-direction text would give it: what to add for a weak aspect, and
# words whose terms work against it.
ADVICE = {"contrast": ("high contrast", "dramatic lighting", "chiaroscuro"),
          "colour": ("vibrant palette", "vivid colours", "saturated colours"),
          "balance": ("centered composition", "rule of thirds", "symmetrical composition"),
          "clutter": ("centered composition", "crisp detail"),
          "focus": ("vignette", "crisp detail")}
AGAINST = {"contrast": ("low", "hazy", "flat"), "colour": ("monochrome", "black", "muted", "pastel"),
           "balance": ("off-center", "chaotic"), "clutter": ("chaotic",), "focus": ("soft", "hazy")}


def describe_what(things: list[lang.Phrase], scenes: list[str]) -> str:
    """A plain English WHAT, which the simulator's English reads back as the same things and settings."""
    names = [lang.article(p.text()) for p in things] or ["an empty scene"]
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    places = [SKY_PHRASES.get(s) or GROUND_PHRASES.get(s, "") for s in scenes]
    text = listed[0].upper() + listed[1:]
    if places:
        text += " " + " ".join(p for p in places if p)
    return text + "."


def parse_how(text: str) -> list[str]:
    return [t.strip() for t in text.lower().replace(".", "").split(",") if t.strip()]


def expand_what(idea: str, rng: random.Random, llm: Any) -> str:
    """Read the idea's things and settings; keep most, recolour some, add scenery of its own."""
    things = []
    for phrase in lang.phrases(idea):
        if rng.random() < llm.keep_thing:
            colour = phrase.colour_word if rng.random() < llm.keep_colour else rng.choice((None, *lang.COLOUR_NAMES))
            things.append(lang.Phrase(phrase.noun, colour))
    for _ in range(3):
        name = rng.choice(EMBELLISHMENTS)
        if rng.random() < llm.extra_things / 3 and all(p.noun != name for p in things):
            things.append(lang.Phrase(name, rng.choice((None, *lang.COLOUR_NAMES))))
    rng.shuffle(things)
    return describe_what(things, [s for s in lang.scenes(idea) if rng.random() < llm.keep_scene])


def same_subject(a: str, b: str) -> bool:
    """Whether two style terms speak of the same thing ('high contrast', 'low contrast'), read from
    their words as a writer would: they share a word other than a colour or a function word."""
    shared = set(a.split()) & set(b.split())
    return any(not lang.colour_of(w) and w not in lang.STOPWORDS for w in shared)


def expand_how(rng: random.Random) -> str:
    """Two to four style terms of the writer's vocabulary, none speaking of the same thing twice."""
    terms: list[str] = []
    for term in rng.sample(sorted(lang.STYLE_VOCABULARY), k=rng.choice([2, 3, 3, 4])):
        if not any(same_subject(term, t) for t in terms):
            terms.append(term)
    return ", ".join(terms)


def _what_suggestions(v: dict[str, Any], rng: random.Random, llm: Any) -> list[str]:
    suggestions = []
    for item in v.get("missing", []):
        phrase = str(item).split(" (")[0].strip()
        if not phrase or rng.random() >= llm.mentions_missing:
            continue
        if phrase.startswith("scene: "):
            suggestions.append(f"set the scene: {phrase.removeprefix('scene: ')}")
        else:
            suggestions.append(f"add {lang.article(phrase)}")
    named = {p.noun for p in lang.phrases(v.get("idea", ""))}
    for phrase in lang.phrases(v.get("what", "")):
        if phrase.noun not in named and rng.random() < llm.prunes_extra:
            suggestions.append(f"remove the {phrase.noun}")
    return suggestions


def _style_advice(aspect: str, how: list[str], rng: random.Random, llm: Any) -> list[str]:
    """Advice for one weak aspect: the sound general advice, or, at 1 - accuracy, a plausible other term."""
    if rng.random() >= llm.style_advice_accuracy:
        return [f"use {rng.choice(sorted(lang.STYLE_VOCABULARY))}"]
    advice = [f"use {rng.choice(ADVICE.get(aspect, ADVICE['contrast']))}"]
    against = AGAINST.get(aspect, ())
    return advice + [f"drop {term}" for term in how if any(word in against for word in term.split())]


def _how_suggestions(v: dict[str, Any], rng: random.Random, llm: Any) -> list[str]:
    how = parse_how(v.get("how", ""))
    suggestions = []
    for aspect in v.get("weak", []):
        if rng.random() < llm.mentions_missing:
            suggestions.extend(_style_advice(str(aspect), how, rng, llm))
    colourless = [t for t in how if any(word in AGAINST["colour"] for word in t.split())]
    if v.get("missing") and colourless and rng.random() < llm.style_advice_accuracy:
        # things reported missing under a black-and-white or muted style: the style may hide their colours
        suggestions.extend(f"drop {term}" for term in colourless)
    return list(dict.fromkeys(suggestions))


def critique(v: dict[str, Any], rng: random.Random, llm: Any) -> dict[str, Any]:
    """Suggestions for the active dimension (or both) from the judge's answer as written, the prompts
    and the idea."""
    dimension = v["dimension"]
    suggestions = (_what_suggestions(v, rng, llm) if dimension in ("what", "both") else []) + \
        (_how_suggestions(v, rng, llm) if dimension in ("how", "both") else [])
    if not suggestions:
        suggestions.append("keep it, but make it more striking")
    name = {"what": "content", "how": "style"}.get(dimension, "content and style")
    return {"critique": f"The {name} falls short: " + "; ".join(suggestions) + ".", "suggestions": suggestions}


def _refine_what(v: dict[str, Any], suggestions: list[str], rng: random.Random, llm: Any) -> str:
    things, scenes = lang.phrases(v["what"]), lang.scenes(v["what"])
    for s in suggestions:
        if rng.random() >= llm.follows_suggestion:
            continue
        if s.startswith(("add a ", "add an ")):
            added = lang.phrases(s.removeprefix("add "))
            if added:
                things = [p for p in things if p.noun != added[-1].noun] + [added[-1]]
        elif s.startswith("remove the "):
            things = [p for p in things if p.noun != s.removeprefix("remove the ").strip()]
        elif s.startswith("set the scene: "):
            scene = lang.SCENE_WORDS.get(s.removeprefix("set the scene: ").strip())
            if scene is not None:
                sky = scene in SKIES
                scenes = [x for x in scenes if (x in SKIES) != sky] + [scene]
    if rng.random() < llm.side_change and things:  # a refinement sometimes changes what it should not
        victim = rng.randrange(len(things))
        things[victim] = lang.Phrase(things[victim].noun, rng.choice(lang.COLOUR_NAMES))
    return describe_what(things, scenes)


def _refine_how(v: dict[str, Any], suggestions: list[str], rng: random.Random, llm: Any) -> str:
    terms = parse_how(v["how"])
    for s in suggestions:
        if rng.random() >= llm.follows_suggestion:
            continue
        if s.startswith("use "):
            term = s.removeprefix("use ")
            terms = [t for t in terms if not same_subject(t, term)] + [term]
        elif s.startswith("drop "):
            terms = [t for t in terms if t != s.removeprefix("drop ")]
    if rng.random() < llm.side_change:
        terms.append(rng.choice(sorted(lang.STYLE_VOCABULARY)))
    return ", ".join(dict.fromkeys(terms)) or "natural light"


def vary(dimension: str, text: str, rng: random.Random) -> str:
    """Another take on a text, as a writer told that a version is taken writes one: a change of its own
    choosing (a colour, a thing of the scenery, a style term), not an informed improvement."""
    if dimension == "what":
        things, scenes = lang.phrases(text), lang.scenes(text)
        if things and rng.random() < 0.5:
            victim = rng.randrange(len(things))
            things[victim] = lang.Phrase(things[victim].noun, rng.choice(lang.COLOUR_NAMES))
        else:
            things.append(lang.Phrase(rng.choice(EMBELLISHMENTS), rng.choice((None, *lang.COLOUR_NAMES))))
        return describe_what(things, scenes)
    terms = parse_how(text)
    term = rng.choice(sorted(lang.STYLE_VOCABULARY))
    terms = [t for t in terms if not same_subject(t, term)] + [term]
    return ", ".join(dict.fromkeys(terms))


def avoiding(write: Any, avoid: Any, change: Any = None, tries: int = 4) -> str:
    """A text that is none of the versions to `avoid` (when the writer manages within a few tries):
    written again, or changed by `change`, until it differs."""
    taken = {" ".join(str(t).casefold().split()).strip(" .") for t in avoid or []}
    text = write()
    for _ in range(tries):
        if " ".join(text.casefold().split()).strip(" .") not in taken:
            break
        text = change(text) if change is not None else write()
    return text


def refine(v: dict[str, Any], rng: random.Random, llm: Any) -> str:
    suggestions = [str(s) for s in v.get("suggestions", [])]
    if v["dimension"] == "what":
        return _refine_what(v, suggestions, rng, llm)
    return _refine_how(v, suggestions, rng, llm)
