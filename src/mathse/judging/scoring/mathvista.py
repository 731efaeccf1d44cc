"""MathVista scoring: the official evaluator's rule-based extraction and its normalize_extracted_answer, with
our rules where the official script asks GPT-4 to extract (see mathse.judging.scoring for the departures)."""

from __future__ import annotations

import math
import re

from mathse.judging.grading import LETTERS, bound_response
from mathse.judging.scoring.common import (
    Verdict,
    _free_form_match,
    _meta,
    extract_common,
    last_number,
    letter_in_response,
    nearest_choice,
    strip_units,
)


def _int_text(digits: str) -> str:
    """str(int(text)) for '[-+]?\\d+' of any length (int() refuses more than 4300 digits)."""
    body = digits.lstrip("+-").lstrip("0") or "0"
    return "-" + body if digits.startswith("-") and body != "0" else body


def quick_extract(text: str) -> str | None:
    """re.search(r'The answer is "(.*)"\\.', text).group(1), found in linear time: per line, the text between
    the first 'The answer is "' and the line's last '".'."""
    marker, start = 'The answer is "', 0
    while (i := text.find(marker, start)) >= 0:
        end = text.find("\n", i)
        end = len(text) if end < 0 else end
        j = text.rfind('".', i + len(marker), end)
        if j >= 0:
            return text[i + len(marker) : j]
        start = end + 1  # a later marker on the same line has no closing either
    return None


def mathvista_extract(response: str, question_type: str, answer_type: str, choices: list[str]) -> tuple[str, str]:
    """The official rule-based extraction, then ours where the official script would ask GPT-4."""
    r = bound_response(response).strip()
    if not r:
        return "", "empty"
    if question_type == "multi_choice" and r in choices:
        return r, "exact_choice"
    if answer_type == "integer" and re.fullmatch(r"[-+]?\d+", r):
        return _int_text(r), "integer_response"
    if answer_type == "float":
        try:
            return str(float(r)), "float_response"
        except ValueError:
            pass
    quick = quick_extract(r)
    if quick is not None:
        return quick, "quick_extract"
    found, rule = extract_common(r)
    if found is not None:
        return found, rule
    if question_type == "multi_choice":
        letter = letter_in_response(r, len(choices))
        if letter:
            return letter, "letter"
    if answer_type in ("integer", "float"):
        number = last_number(r)
        if number is not None:
            return number, "last_number"
    return "", "none"


def mathvista_normalize(
    extraction: str, choices: list[str], question_type: str, answer_type: str, precision: int | None
) -> tuple[str | None, str | None]:
    """The official normalize_extracted_answer; the second value says which branch decided."""
    if question_type == "multi_choice":
        x = str(extraction).strip()
        letters = re.findall(r"\(([a-zA-Z])\)", x)
        if letters:
            x = letters[0].upper()
        options = LETTERS[: len(choices)]
        if x in options:
            return choices[options.index(x)], "letter"
        if x in choices:
            return x, "choice_text"
        return nearest_choice(x, choices), "nearest_choice"
    how = "exact"
    if answer_type in ("integer", "float"):
        try:
            value = float(extraction)
        except (TypeError, ValueError):
            stripped = strip_units(extraction)
            if stripped is None:
                return None, None
            value, how = float(stripped), "units_stripped"
        if not math.isfinite(value):  # int() and round() of inf or nan raise: no number to compare
            return None, None
        if answer_type == "integer":
            return str(int(value)), how
        return str(round(value, precision) if precision is not None else round(value)), how
    return str(extraction), how


def score_mathvista(response: str, problem: dict) -> Verdict:
    meta = _meta(problem)
    choices = list(problem.get("choices") or [])
    question_type = meta.get("question_type") or ("multi_choice" if problem["answer_type"] == "choice" else "free_form")
    answer_type = meta.get("answer_type") or problem["answer_type"]
    extracted, rule = mathvista_extract(response, question_type, answer_type, choices)
    prediction, how = mathvista_normalize(extracted, choices, question_type, answer_type, problem.get("precision"))
    if prediction is not None and prediction == problem["answer"]:
        return Verdict(extracted, rule, True, how)
    if question_type != "multi_choice" and extracted:
        kind = _free_form_match(extracted, problem["answer"], problem.get("precision"))
        if kind is not None:
            return Verdict(extracted, rule, True, kind)
    return Verdict(extracted or None, rule, False, None)
