"""The offline simulator's settings: its latencies, image size, and every rate at which its models err,
each with the reason for its default. Past-shaping ones are listed in `config.PAST_KEYS`."""

from __future__ import annotations

from pydantic import Field

from beamsearch.strict import Strict


class Latency(Strict):
    mean: float = Field(0.0, ge=0)
    jitter: float = Field(0.0, ge=0, le=1, description="fraction of the mean, drawn uniformly +-")


class SimLatency(Strict):
    text: Latency = Latency(mean=0.05, jitter=0.5)
    image: Latency = Latency(mean=0.2, jitter=0.5)
    vision: Latency = Latency(mean=0.08, jitter=0.5)


class SimLLMSettings(Strict):
    """The simulated text model's habits: how faithfully it expands, critiques and refines. No published
    figure measures these for prompt writing; the defaults are chosen to be plainly imperfect, and the
    quality benchmark (BENCHMARKS.md, Quality) shows what they lead to."""

    keep_thing: float = Field(0.7, ge=0, le=1, description="chance an expansion keeps a thing the idea names "
                              "(LLM expansions embellish and drift: some named things get lost)")
    keep_colour: float = Field(0.7, ge=0, le=1, description="chance an expansion keeps the colour said for a "
                               "thing (else it writes another colour, or none)")
    keep_scene: float = Field(0.65, ge=0, le=1, description="chance an expansion keeps a setting the idea names")
    extra_things: float = Field(1.0, ge=0, le=3, description="mean number of things an expansion adds that the "
                                "idea does not name (embellishment)")
    mentions_missing: float = Field(0.85, ge=0, le=1, description="chance the critic turns each element the judge "
                                    "reported missing into a suggestion")
    prunes_extra: float = Field(0.5, ge=0, le=1, description="chance the critic suggests removing a thing of the "
                                "WHAT that the idea does not name")
    style_advice_accuracy: float = Field(0.6, ge=0, le=1, description="chance a piece of style advice is the sound "
                                         "general advice for the weak aspect the judge named (a flat image wants "
                                         "contrast); otherwise it is some other style term, which may backfire")
    follows_suggestion: float = Field(0.85, ge=0, le=1, description="chance the refiner applies each suggestion")
    side_change: float = Field(0.25, ge=0, le=1, description="chance the refiner also changes something it was "
                               "not asked to (a colour, a style term)")


class SimSettings(Strict):
    """The offline simulator: how slow, how big its images, and how its models err. Every rate says what
    real models do that it stands for; none of them may make the simulator kinder to the search."""

    latency: SimLatency = SimLatency()
    image_size: int = Field(256, ge=32, le=4096)
    alignment_noise: float = Field(6.0, ge=0, description="std. dev. of the rating judge's random alignment "
                                   "error (0-100), on top of its errors of perception below")
    rating_saturation: float = Field(0.4, ge=0, lt=1, description="share of the gap to 100 that a 0-100 alignment "
                                     "rating closes (ratings saturate high); 0 = an unbiased rating")
    aesthetic_noise: float = Field(0.6, ge=0, description="std. dev. of the judge's random aesthetic error (0-10), "
                                   "on top of its misjudged aspects below")
    judge_miss_rate: float = Field(0.10, ge=0, le=1, description="chance the judge overlooks an asked-for element "
                                   "the picture shows (reports it missing); with judge_hallucination_rate about one "
                                   "yes/no object answer in eight wrong, as POPE (Li et al., 2023) measures for "
                                   "current open vision-language models (accuracy about 85-88%)")
    judge_hallucination_rate: float = Field(0.15, ge=0, le=1, description="chance the judge reports an element "
                                            "found that the picture does not show; vision-language models say yes "
                                            "to absent objects more often than no to present ones (POPE)")
    weak_miss_rate: float = Field(0.2, ge=0, le=1, description="chance the judge does not name an aspect that is "
                                  "weak (contrast, colour, balance, clutter); aesthetic verdicts agree with people "
                                  "far less than object answers (MLLM-as-a-Judge, Chen et al., 2024: scores "
                                  "correlate with people's at about 0.49)")
    weak_false_rate: float = Field(0.2, ge=0, le=1, description="chance the judge calls a sound aspect weak")
    judge_persistence: float = Field(0.7, ge=0, le=1, description="share of the judge's misperceptions that belong "
                                     "to the picture (an ambiguous blob is misread on every look) rather than to "
                                     "one call, so judging again does not undo them; chosen so that pairwise "
                                     "verdicts flip when the two images swap places about as often as issue 12 "
                                     "cites for vision judges (about 18%; 20% in the quality benchmark's pools)")
    colour_shade: float = Field(30.0, ge=0, le=60, description="the painter's largest shade error per channel "
                                "(0-255): an image model never paints the exact colour a word names")
    colour_miss_rate: float = Field(0.15, ge=0, le=1, description="chance the painter gives a thing another colour "
                                    "(another thing's colour when there is one): attribute binding is where text-to-"
                                    "image models fail most (GenEval, Ghosh et al., 2023; T2I-CompBench)")
    object_drop_rate: float = Field(0.08, ge=0, le=1, description="chance the painter leaves a named thing out "
                                    "(multi-object prompts lose objects, GenEval)")
    failure_rate: float = Field(0.0, ge=0, le=1, description="share of calls that fail transiently")
    policy_words: list[str] = Field(default_factory=lambda: ["gore"], description="words the sim refuses")
    checklist_noise: float | None = Field(None, ge=0, le=0.5, description="chance the judge gets one checklist "
                                          "answer wrong, either way; none = the judge's perception above (a yes "
                                          "missed at judge_miss_rate, a no answered yes at judge_hallucination_rate)")
    pairwise_noise: float = Field(4.5, ge=0, description="std. dev. of the judge's random error on each image's "
                                  "overall quality (0-100) when comparing two, on top of its perception of each; "
                                  "with the rates above a verdict agrees with the truth about 75% of the time, near "
                                  "the 0.77 agreement with people MLLM-as-a-Judge (Chen et al., 2024) reports for "
                                  "GPT-4V's pair comparisons")
    pairwise_bias: float = Field(3.0, description="points the judge adds to whichever image it is shown first")
    llm: SimLLMSettings = SimLLMSettings()
