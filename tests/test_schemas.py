"""Judge answers: scores must be JSON numbers. Lax parsing would read `true` as 1 and "85" as 85 and rank
a candidate on an answer that did not follow the schema; such an answer is an InvalidAnswer instead, which
the gate retries like any other unusable attempt."""

from __future__ import annotations

import json

import pytest

from beamsearch.errors import InvalidAnswer, RetryableError
from beamsearch.schemas import AestheticAnswer, AlignmentAnswer, ChecklistAnswer, parse_answer

QUESTION = {"id": "q1", "question": "Is there a boat?", "category": "entity", "element": "boat", "depends_on": []}


@pytest.mark.parametrize(("model", "answer"), [
    (AlignmentAnswer, {"score": True}),
    (AlignmentAnswer, {"score": "85"}),
    (AlignmentAnswer, {"score": "85.5"}),
    (AestheticAnswer, {"score": False}),
    (AestheticAnswer, {"score": "7"}),
    (ChecklistAnswer, {"questions": [{**QUESTION, "weight": True}]}),
    (ChecklistAnswer, {"questions": [{**QUESTION, "weight": "2"}]}),
])
def test_bools_and_strings_are_not_scores(model, answer) -> None:
    with pytest.raises(InvalidAnswer, match="does not fit its schema") as caught:
        parse_answer(json.dumps(answer), model)
    assert isinstance(caught.value, RetryableError)  # retried as an attempt, not a fatal error


def test_numbers_still_are_scores() -> None:
    assert parse_answer('{"score": 85}', AlignmentAnswer).score == 85.0
    assert parse_answer('{"score": 72.5, "found": ["boat"]}', AlignmentAnswer).score == 72.5
    assert parse_answer('{"score": 7}', AestheticAnswer).score == 7.0
    assert parse_answer(json.dumps({"questions": [{**QUESTION, "weight": 2}]}), ChecklistAnswer).questions[0].weight == 2
    with pytest.raises(InvalidAnswer):
        parse_answer('{"score": 101}', AlignmentAnswer)  # the range still holds
