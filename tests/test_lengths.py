"""The length rule for plain answers (beamsearch/lengths.py) and the per-task token limits.

A small local model that never stops writes past its asked length until the token limit cuts it off;
the rule keeps the whole sentences (or comma-separated parts) within the asked length and marks the
answer trimmed, and refuses an answer with nothing whole to keep, so it is retried."""

from __future__ import annotations

import pytest

from beamsearch.config import Settings
from beamsearch.errors import AnswerCutOff, InvalidAnswer, SettingsError
from beamsearch.lengths import ASKED, TOKEN_DEFAULTS, max_tokens, plain_answer
from beamsearch.precedence import validate

WHAT, HOW = ASKED["what"], ASKED["how"]


def test_a_complete_answer_within_its_length_is_taken_as_it_is() -> None:
    answer = plain_answer('"A red lighthouse on a black cliff."', WHAT, cut=False, task="expand_what")
    assert answer.text == "A red lighthouse on a black cliff." and answer.trimmed is None


def test_a_cut_answer_keeps_its_whole_sentences_and_is_marked_trimmed() -> None:
    text = "A red lighthouse stands on a cliff. Waves break below it. The sea rises and the"
    answer = plain_answer(text, WHAT, cut=True, task="expand_what")
    assert answer.text == "A red lighthouse stands on a cliff. Waves break below it."
    assert answer.trimmed == {"words": 16, "kept": 11}


def test_an_answer_far_past_its_length_is_trimmed_to_it_even_when_it_stopped() -> None:
    sentence = "A tall red lighthouse stands alone on a dark cliff above the sea. "
    answer = plain_answer(sentence * 20, WHAT, cut=False, task="expand_what")  # 260 words
    assert len(answer.text.split()) <= WHAT.words and answer.text.endswith("sea.")
    assert answer.trimmed["words"] == 260


def test_a_little_over_is_tolerated_but_far_over_is_not() -> None:
    ninety = " ".join(["word"] * 89) + "."
    assert plain_answer(ninety, WHAT, cut=False, task="expand_what").trimmed is None
    with pytest.raises(InvalidAnswer, match="runs past its 80 words"):
        plain_answer(" ".join(["word"] * 200) + ".", WHAT, cut=False, task="expand_what")


def test_a_cut_run_on_answer_has_nothing_usable_and_is_retried_without_more_tokens() -> None:
    with pytest.raises(AnswerCutOff, match="cut off at the length limit") as caught:
        plain_answer("storm lighthouse wave " * 60, WHAT, cut=True, task="expand_what")
    assert caught.value.grow is False  # more tokens would only make it longer


def test_a_chat_template_marker_ends_the_answer() -> None:
    text = "A red lighthouse on a cliff, at night.<|im_end|>\n<|im_start|>user\nWrite one WHAT " + "more " * 300
    answer = plain_answer(text, WHAT, cut=True, task="expand_what")
    assert answer.text == "A red lighthouse on a cliff, at night." and answer.trimmed["kept"] == 8
    with pytest.raises(InvalidAnswer, match="empty"):
        plain_answer("<|im_end|> and then junk", WHAT, cut=True, task="expand_what")


def test_a_how_keeps_whole_parts_of_its_first_line() -> None:
    text = "moody chiaroscuro, deep blue palette, oil on canvas, low angle, " + "storm light, " * 40
    answer = plain_answer(text, HOW, cut=True, task="expand_how")
    assert answer.text.startswith("moody chiaroscuro, deep blue palette, oil on canvas, low angle")
    assert len(answer.text.split()) <= HOW.words and not answer.text.endswith(",")
    two_lines = plain_answer("soft dawn light, watercolour\nand then a second line " + "x " * 80, HOW, cut=True,
                             task="expand_how")
    assert two_lines.text == "soft dawn light, watercolour"


def test_token_limits_per_task_default_and_overrides() -> None:
    assert max_tokens(None, "expand_what") == TOKEN_DEFAULTS["expand"] < TOKEN_DEFAULTS["checklist"]
    assert max_tokens(300, "checklist") == 300
    assert max_tokens({"expand": 120}, "expand_how") == 120 and max_tokens({"expand": 120}, "combine") == 250
    settings = validate({"text": {"max_output_tokens": {"expand": 120, "checklist": 1800}},
                         "vision": {"max_output_tokens": 700}})
    assert settings.text.max_output_tokens == {"expand": 120, "checklist": 1800}
    assert settings.vision.max_output_tokens == 700 and Settings().text.max_output_tokens is None


@pytest.mark.parametrize(("value", "message"), [
    ({"judge_alignment": 300}, "names a task this role does not answer ('judge_alignment')"),
    ({"expand": 0}, "'expand' must be a whole number of tokens, at least 16"),
    (True, "must be a whole number of tokens"),
    (2.5, "must be a whole number of tokens"),
])
def test_bad_token_settings_are_one_sentence(value, message) -> None:
    with pytest.raises(SettingsError, match="text.max_output_tokens") as caught:
        validate({"text": {"max_output_tokens": value}})
    assert message in caught.value.message
