"""The simulator's English: what every one of its models knows about words, and nothing more.

The painter, the judge and the text models all read prompts through this module, as real models share
a language: which words are colours, which name settings (night, sea), which are style vocabulary, and
which are nouns. A noun names a thing that can be drawn and asked for; verbs ("reading", "sits"),
adjectives ("wooden", "sleepy"), adverbs and prepositions are not things. In a run of nouns ("lighthouse
keeper", "autumn leaves") the last is the thing and the ones before it only describe it.

This is general knowledge, not the truth: it says nothing about how a thing looks (shape, colour
values), how the judge measures pixels, or which style helps a picture (see `sim_world`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

COLOUR_NAMES = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "white", "black", "brown", "teal", "gray")
COLOUR_ALIASES = {"grey": "gray", "golden": "yellow", "gold": "yellow", "crimson": "red", "scarlet": "red",
                  "violet": "purple", "silver": "gray", "navy": "blue", "emerald": "green", "ivory": "white"}

# setting words: a word of the sky (the background) or of the ground (a band at the bottom)
SCENE_WORDS = {"night": "night", "storm": "storm", "stormy": "storm", "sunset": "sunset", "dawn": "dawn",
               "day": "day", "snow": "snow", "snowy": "snow", "space": "space", "fog": "fog", "foggy": "fog",
               "sea": "sea", "ocean": "sea", "lake": "lake", "field": "field", "meadow": "field", "grass": "field",
               "desert": "desert", "beach": "beach", "road": "road"}

# the style terms every writer knows (what each does to a picture is the painter's business, sim_world)
STYLE_VOCABULARY = (
    "high contrast", "dramatic lighting", "chiaroscuro", "low contrast", "hazy", "flat lighting", "vibrant palette",
    "saturated colours", "vivid colours", "muted palette", "pastel palette", "monochrome", "black and white",
    "centered composition", "symmetrical composition", "rule of thirds", "balanced composition",
    "off-center composition", "chaotic composition", "golden hour", "warm light", "cool light", "moonlight",
    "soft light", "watercolor", "oil painting", "grainy film", "pixel art", "vignette", "photorealistic",
    "crisp detail",
)
# the words style vocabulary is made of: in "dramatic lighting" or "rule of thirds" no thing is named
STYLE_WORDS = set(
    "style contrast high low dramatic lighting light chiaroscuro hazy flat vibrant palette saturated colours "
    "colors vivid muted pastel monochrome black white centered centred symmetrical composition rule thirds "
    "balanced off-center chaotic golden hour warm cool moonlight soft watercolor watercolour oil painting "
    "grainy film pixel art vignette photorealistic crisp detail mood atmosphere tone tones moody cinematic "
    "minimalist focus depth field shallow bokeh render rendering shot lens wide angle close-up texture grain "
    "sharp sharpness clarity exposure".split()
)
STOPWORDS = set(
    "a an the and or of in on at with by for to from under over into onto near beside behind above below "
    "inside outside between among amid atop upon within without against along past toward towards across "
    "around beneath through during while where which who whom whose that this these those there here its "
    "it is are was were be been being has have having had do does did his her their them they he she we "
    "you your our my me him us very some many much more most few one two three four five six seven eight "
    "nine ten lots lot each every all both either neither no not only just also too so as like than then "
    "scene image picture photo showing shows shown set made lit painted rendered drawn small large big tiny "
    "huge little single lone empty full".split()
)
# adjectives and participles that carry no suffix this module can read
ADJECTIVES = set(
    "wooden golden frozen broken ancient old young new tall short bright dark gothic sleepy happy sad angry "
    "calm quiet cozy cosy misty shiny fluffy fuzzy furry giant gentle lonely proud wild wet dry hot cold warm "
    "soft hard round square open closed rusty dusty sandy rocky icy fiery starry cloudy sunny rainy windy "
    "early late dense thick thin narrow wide deep distant nearby magic magical mystic mysterious curious "
    "clear tired lazy busy noisy silent clean dirty fresh ripe rare famous strange huge majestic elegant "
    "cute tiny vintage modern futuristic medieval baroque adorable incredible invisible visible comfortable "
    "miserable lovable remarkable beautiful pretty ugly".split()
)
VERBS = set(
    "sit sits stand stands lie lies fly flies run runs hold holds read reads play plays sleep sleeps swim "
    "swims walk walks look looks watch watches dance dances sing sings float floats rise rises fall falls "
    "glow glows shine shines wait waits rest rests carry carries eat eats drink drinks climb climbs jump "
    "jumps ride rides drift drifts hang hangs lean leans grow grows perch perches meditate "
    "meditates perform performs chase chases hunt hunts paint paints write writes cook cooks "
    "gaze gazes stare stares smile smiles cry cries laugh laughs fight fights guard guards kiss kisses "
    "hug hugs roam roams wander wanders crawl crawls".split()
)
ING_NOUNS = {"building", "painting", "ring", "king", "wing", "string", "spring", "ceiling", "swing", "thing",
             "evening", "morning", "clothing", "wedding", "pudding", "sibling", "duckling", "seedling", "dumpling",
             "earring", "railing", "sling", "ping", "bling", "wring"}
ED_NOUNS = {"bed", "sled", "shed", "seed", "reed", "weed", "steed", "sped", "shred"}
LY_NOUNS = {"lily", "belly", "jelly", "holly", "bully", "family", "rally", "ally", "fly", "butterfly",
            "dragonfly", "firefly", "jellyfly"}
ADJECTIVE_ENDINGS = ("ous", "ful", "less", "ive", "ish", "esque")
# nouns that end like adjectives
NOUNS_LIKE_ADJECTIVES = {"olive", "hive", "beehive", "chive", "detective", "locomotive", "relative", "native",
                         "captive", "fish", "dish", "radish", "wish", "relish", "polish", "jellyfish", "starfish"}

_WORD = re.compile(r"[a-z][a-z'-]*")


def words_of(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def colour_of(word: str) -> str | None:
    """The colour a word names (an alias names the colour it is a shade of), or None."""
    word = COLOUR_ALIASES.get(word, word)
    return word if word in COLOUR_NAMES else None


def singular(word: str) -> str:
    """A plural read as its singular (a rule of thumb: 'leaves' -> 'leaf', 'boxes' -> 'box')."""
    if len(word) <= 3 or word.endswith(("ss", "us", "is")):
        return word
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith("ves"):
        return word[:-3] + "f"
    if word.endswith(("ches", "shes", "xes", "sses", "zes")):
        return word[:-2]
    if word.endswith("s"):
        return word[:-1]
    return word


def is_noun(word: str) -> bool:
    """Whether a word names a thing: not a function word, colour, setting, style word, verb or adjective."""
    if len(word) < 3 or word in STOPWORDS or colour_of(word) or word in SCENE_WORDS or word in STYLE_WORDS:
        return False
    if word in ADJECTIVES or word in VERBS or (word.endswith(ADJECTIVE_ENDINGS) and word not in NOUNS_LIKE_ADJECTIVES):
        return False
    if word.endswith("ing") and word not in ING_NOUNS:
        return False
    if word.endswith("ed") and len(word) > 4 and word not in ED_NOUNS:
        return False
    return not (word.endswith("ly") and word not in LY_NOUNS)


@dataclass(frozen=True)
class Phrase:
    """A thing a text names, with the colour word said for it (as written), if any."""

    noun: str
    colour_word: str | None = None

    def text(self) -> str:
        return f"{self.colour_word} {self.noun}" if self.colour_word else self.noun


def phrases(text: str) -> list[Phrase]:
    """The things a text names, in order, once each. A colour word up to two words before a thing is its
    colour; in a run of nouns only the last is a thing ('lighthouse keeper' names a keeper)."""
    words = words_of(text)
    out: list[Phrase] = []
    seen: set[str] = set()
    for i, word in enumerate(words):
        if not is_noun(word) or (i + 1 < len(words) and is_noun(words[i + 1])):
            continue
        noun = singular(word)
        colour = next((words[i - back] for back in (1, 2, 3) if i - back >= 0 and colour_of(words[i - back])
                       and all(not is_noun(w) for w in words[i - back + 1:i])), None)
        if noun not in seen:
            seen.add(noun)
            out.append(Phrase(noun, colour))
    return out


def scenes(text: str) -> list[str]:
    """The settings a text names (canonical names, in order, once each)."""
    found: list[str] = []
    for word in words_of(text):
        scene = SCENE_WORDS.get(word)
        if scene is not None and scene not in found:
            found.append(scene)
    return found


def article(noun: str) -> str:
    """`noun` with its indefinite article, as the simulator's English writes it ("an owl", "a boat")."""
    return ("an " if noun[:1] in "aeiou" else "a ") + noun
