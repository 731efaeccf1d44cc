"""MathVerse and generic scoring: extraction then equivalence, multiple choice compared by letter; generic also
takes list answers."""

from __future__ import annotations

from mathse.judging.grading import LETTERS, choice_letter
from mathse.judging.scoring.common import (
    Verdict,
    _free_form_match,
    _meta,
    extract_common,
    last_number,
    letter_in_response,
)


def _gold_letter(problem: dict, choices: list[str]) -> str | None:
    answer = str(problem["answer"]).strip()
    meta = _meta(problem)
    return meta.get("answer_letter") or choice_letter(answer, choices)


def _score_extract_then_match(response: str, problem: dict, *, lists: bool) -> Verdict:
    choices = list(problem.get("choices") or [])
    extracted, rule = extract_common(response)
    if problem["answer_type"] == "choice":
        n = len(choices) or len(LETTERS)
        if extracted is None:
            letter = letter_in_response(response, n)
            extracted, rule = (letter, "letter") if letter else (None, "none")
        letter, gold = choice_letter(extracted, choices), _gold_letter(problem, choices)
        correct = letter is not None and letter == gold
        return Verdict(extracted, rule, correct, "letter" if correct else None)
    if extracted is None and problem["answer_type"] in ("integer", "float"):
        number = last_number(response)
        extracted, rule = (number, "last_number") if number is not None else (None, "none")
    kind = _free_form_match(extracted, problem["answer"], problem.get("precision"))
    if kind == "list" and not lists:
        kind = None
    return Verdict(extracted, rule, kind is not None, kind)


def score_mathverse(response: str, problem: dict) -> Verdict:
    return _score_extract_then_match(response, problem, lists=False)


def score_generic(response: str, problem: dict) -> Verdict:
    return _score_extract_then_match(response, problem, lists=True)
