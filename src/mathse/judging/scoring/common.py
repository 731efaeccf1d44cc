"""What every scoring scheme shares: the `Verdict` record, answer extraction from a response, and the comparisons
several benchmarks use (units stripped, lists item by item, nearest choice by edit distance); and the `mathse`
scheme, the pipeline's own rule, which is nothing more than these.

Every pattern here runs in linear time on any text (see the note above `_ANSWER_IS_RE`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from mathse.judging import checks
from mathse.judging.grading import LETTERS, bound_response, extract_answer, has_answer_sentence, match_kind, normalize


@dataclass(frozen=True)
class Verdict:
    extracted: str | None  # the answer taken from the response (before benchmark normalisation)
    rule: str  # which extraction rule produced it
    correct: bool
    matched_by: str | None  # how it was found equal to the reference; None when wrong
    check: str | None = None  # why the check was cut short (timeout, memory, too_large, error); None: it ran


# ---------------------------------------------------------------------------------------------------
# Shared extraction helpers


# Every pattern here runs in linear time on any text: no two adjacent parts can match the same characters
# and then fail (the greedy-then-backtrack that made `(.+?)\s*$` quadratic), or the pattern is replaced by
# plain string operations.
_ANSWER_IS_RE = re.compile(r"(?:final |correct )?answer (?:is|should be)\s*:?\s*", re.IGNORECASE)
# The rest of the line after "Answer:" (stripped by the caller); `[^\n]*` always matches, so nothing backtracks.
_ANSWER_COLON_RE = re.compile(r"^[^\S\n]*\**answer\**[^\S\n]*:\s*([^\n]*)", re.IGNORECASE | re.MULTILINE)
_NUMBER = r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[-+]?\.\d+"
_UNIT_TAIL = r"(?:\\?%|°|\^\{?\\circ\}?|\\,?\s*\\?(?:text|mathrm)\{[^{}]*\}|[A-Za-z][A-Za-z ]*\^?[23]?)"
# Matched on text already stripped of surrounding spaces, '$' and a final '.' (see strip_units).
_NUMBER_WITH_UNIT_RE = re.compile(rf"({_NUMBER})\s*{_UNIT_TAIL}?")
_LAST_NUMBER_RE = re.compile(r"-?\d+(?:\.\d+)?")


def _clean(text: str) -> str:
    return text.strip().strip("*").strip().rstrip(".").strip().strip("$").strip()


def answer_is(response: str) -> str | None:
    """The text after the last 'the answer is' / 'answer should be': its first line and first sentence."""
    parts = _ANSWER_IS_RE.split(bound_response(response))
    if len(parts) < 2:
        return None
    tail = parts[-1].strip().split("\n")[0].split(". ")[0]
    return _clean(tail) or None


def _rule(text: str) -> str:
    return "answer_prefix" if has_answer_sentence(text) else "boxed"


def extract_common(response: str) -> tuple[str | None, str]:
    """The paper's closing sentence, else \\boxed{}, else 'the answer is ...', else an 'Answer: ...' line."""
    text = bound_response(response)
    found = extract_answer(text)
    if found is not None:
        return found, _rule(text)
    found = answer_is(text)
    if found is not None:
        return found, "answer_is"
    matches = list(_ANSWER_COLON_RE.finditer(text))
    if matches and not matches[-1].group(1) and not matches[-1].group(0).split(":", 1)[1].strip("\n"):
        matches.pop()  # "Answer:" and only newlines after it, at the end: not an answer line
    if matches and _clean(matches[-1].group(1)):
        return _clean(matches[-1].group(1)), "answer_colon"
    return None, "none"


def strip_units(text: str | None) -> str | None:
    """'5 cm' -> '5', '25%' -> '25', '1,000 people' -> '1000', '30^\\circ' -> '30'; None if not a number."""
    if text is None:
        return None
    t = text.strip()
    if t.endswith("$"):
        t = t[:-1].rstrip()
    if t.endswith("."):
        t = t[:-1].rstrip()
    if t.startswith("$"):
        t = t[1:].lstrip()
    m = _NUMBER_WITH_UNIT_RE.fullmatch(t)
    return m.group(1).replace(",", "") if m else None


def last_number(text: str) -> str | None:
    numbers = _LAST_NUMBER_RE.findall(re.sub(r"(\d),(\d{3})", r"\1\2", bound_response(text)))
    return numbers[-1] if numbers else None


def letter_in_response(response: str, n: int) -> str | None:
    """The last option letter written as '(B)' in a response, else a response that is just 'B' / 'B.'."""
    text = bound_response(response)
    letters = [x.upper() for x in re.findall(r"\(([A-Za-z])\)", text) if LETTERS.index(x.upper()) < n]
    if letters:
        return letters[-1]
    t = text.strip()
    if t and t[0] in LETTERS and t[1:].lstrip() in ("", ".", ")") and LETTERS.index(t[0]) < n:
        return t[0]
    return None


def parse_list(text: str | None) -> list[str] | None:
    """'[1, 2.5, -3]', '(1, 2)' or '1, 2' as a list of normalised items; None if not a list."""
    if text is None:
        return None
    t = text.strip().strip("$").strip()
    if t[:1] in "[(" and t[-1:] in ")]":
        t = t[1:-1]
    if "," not in t:
        return None
    return [normalize(x).strip("'\"") for x in t.split(",")]


def _lists_equal(extracted: str | None, reference: str) -> bool:
    a, b = parse_list(extracted), parse_list(reference)
    if a is None or b is None or len(a) != len(b):
        return False
    return all(match_kind(x, y) is not None for x, y in zip(a, b, strict=True))


def _free_form_match(extracted: str | None, reference: str, precision: int | None) -> str | None:
    """math-verify equivalence, then the same with units stripped, then item by item for lists."""
    kind = match_kind(extracted, reference, precision)
    if kind is not None:
        return kind
    a, b = strip_units(extracted), strip_units(reference)
    if a is not None and match_kind(a, b if b is not None else reference, precision) is not None:
        return "units_stripped"
    if _lists_equal(extracted, reference):
        return "list"
    return None


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (MathVista's nearest-choice fallback uses python-Levenshtein's `distance`)."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        if i % 256 == 0:
            checks.tick()  # quadratic in the worst case: within the row's time budget
        cur = [i]
        for j, cb in enumerate(b, start=1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def nearest_choice(prediction: str, choices: list[str]) -> str:
    """The first choice at the least edit distance (a choice whose length alone puts it further is skipped)."""
    best, best_i = None, 0
    for i, c in enumerate(choices):
        if best is not None and abs(len(prediction) - len(c)) > best:
            continue
        d = edit_distance(prediction, c)
        if best is None or d < best:
            best, best_i = d, i
    return choices[best_i]


def _meta(problem: dict) -> dict:
    meta = problem.get("metadata") or {}
    return json.loads(meta) if isinstance(meta, str) else dict(meta)


# ---------------------------------------------------------------------------------------------------
# mathse (the synthetic suite)


def _extract_mathse(response: str) -> tuple[str | None, str]:
    text = bound_response(response)
    extracted = extract_answer(text)
    return extracted, "none" if extracted is None else _rule(text)


def score_mathse(response: str, problem: dict) -> Verdict:
    extracted, rule = _extract_mathse(response)
    kind = match_kind(extracted, problem["answer"], problem.get("precision"))
    return Verdict(extracted, rule, kind is not None, kind)
