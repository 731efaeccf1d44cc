"""Scoring model responses by each benchmark's official rules; math-verify for symbolic equivalence.

One function per scoring scheme, each `(response, problem) -> Verdict`, where `problem` is a canonical
problem row (artifacts.PROBLEM, `metadata` as a dict or JSON string):

- `mathse`: the pipeline's own rule (the paper's closing sentence, else the last \\boxed{}), checked with
  grading.answers_match. The synthetic suite uses it, so the demo's numbers do not move.
- `mathvista`: the official evaluator's rule-based steps (response equal to a choice, integer / float
  responses, `The answer is "..."`), then its normalisation: "(A)" -> A, letter -> choice text, nearest
  choice by edit distance when nothing matches, int(), round(float, precision), str(list), exact match.
  Where the official script asks GPT-4 to extract, we try the rules below in order and record which fired.
- `mathvision`: the official evaluate.py steps (letter patterns, "... is <number>", "the answer is"
  flags, last \\boxed{}, find_math_answer clean-up) and its is_equal (exact after clean-up, same set of
  comma-separated items, numbers equal at 2 decimals), against the answer letter and the option value.
- `mathverse`: extraction then equivalence; multiple choice compared by letter.
- `generic`: the same as mathverse, plus list answers; for the generic JSONL format and MathVL.

Departures from the official scripts, all recorded per row in `matched_by` so they can be audited:
every scheme recognises the paper's "The answer to this problem is ..." sentence (MathSE models end with
it), falls back to math-verify (`math_verify`) when the official comparison says no on a free-form
answer, strips units / percent signs from numeric answers (`units_stripped`, what the official GPT
extraction does), and MATH-Vision also maps a named option ("(B) 8/11") to its letter (`letter`).
`nearest_choice` marks MathVista verdicts that only the official nearest-choice fallback produced.

Optionally (eval.answer_extractor: openai), responses where no rule finds an answer go to an LLM extractor
(mathse.extractor), and its answer is scored by the same rules (rule `llm_extractor`).

Each row's check is bounded in time and memory (`mathse.checks`, the `answer_check` config section): a
row cut short is wrong, with the reason in `check` (`timeout`, `memory`, `too_large`, `error`). Responses are
capped and runs of spaces collapsed before any rule reads them (grading.bound_response), and no pattern
here backtracks.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, replace

import polars as pl

from mathse import checks
from mathse.grading import (
    LETTERS,
    bound_response,
    choice_letter,
    extract_answer,
    has_answer_sentence,
    match_kind,
    normalize,
)
from mathse.prompts import ANSWER_PREFIX

log = logging.getLogger(__name__)

SCORINGS = ("mathse", "mathvista", "mathverse", "mathvision", "generic")


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


# ---------------------------------------------------------------------------------------------------
# MathVista


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


# ---------------------------------------------------------------------------------------------------
# MATH-Vision


def _mathvision_strip(s: str) -> str:
    """The clean-up MATH-Vision inherits from the MATH benchmark (_strip_string), reimplemented."""
    s = s.replace("\n", "").replace("\\!", "").replace("\\\\", "\\")
    s = s.replace("tfrac", "frac").replace("dfrac", "frac").replace("\\left", "").replace("\\right", "")
    s = s.replace("^{\\circ}", "").replace("^\\circ", "").replace("\\$", "").replace("$", "")
    s = s.split("\\text{ ")[-1]  # units written as "\text{ cm}"
    s = s.replace("\\%", "").replace("%", "").replace(" .", " 0.").replace("{.", "{0.")
    if not s:
        return s
    if s[0] == ".":
        s = "0" + s
    for sep in ("=", "\\approx"):
        if len(s.split(sep)) == 2:
            s = s.split(sep)[-1]
    s = re.sub(r"\\sqrt(\w)", r"\\sqrt{\1}", s).replace(" ", "")
    if s == "0.5":
        s = "\\frac{1}{2}"
    m = re.fullmatch(r"(-?\d+)/(\d+)", s)
    if m:
        s = f"\\frac{{{m.group(1)}}}{{{m.group(2)}}}"
    return s


def mathvision_clean(s: str) -> str:
    """find_math_answer: lower-case, the last \\boxed{...} (else the whole text), value after '=', no units."""
    s = s.lower().replace("{}", "")
    # re.findall(r"oxed\{(.*)\}", s, flags=re.S)[-1] without the pattern (quadratic over many 'oxed{'): from
    # the first 'oxed{' to the last '}' after it
    start, end = s.find("oxed{"), s.rfind("}")
    ans = s[start + 5 : end] if 0 <= start and start + 5 <= end else s
    if "}" in ans and ("{" not in ans or ans.find("}") < ans.find("{")):
        ans = ans.split("}")[0]
    ans = ans.split("=")[-1].split("\\approx")[-1]
    for old, new in [(" ", ""), ("\\,", ""), ("∞", "\\infty"), ("+\\infty", "\\infty"), ("\\\\", "\\")]:
        ans = ans.replace(old, new)
    for unit in ["\n", "\\text", "\\mbox", "\\left", "\\right", "^{\\circ}", "^\\circ", "{m}^3", "m^3"]:
        ans = ans.replace(unit, "")
    for unit in ["{units}", "units", "{km}", "km"]:
        ans = ans.replace(unit, "")
    return _mathvision_strip(ans.replace("bmatrix", "pmatrix"))


def _numeric_value(s: str) -> float | None:
    """A number for '3', '-2.5', '\\frac{1}{2}', '2\\sqrt{2}' (MATH-Vision evaluates latex with sympy, here in
    the bounded worker, memoised there)."""
    try:
        return float(s)
    except ValueError:
        pass
    if len(s) > 100:
        return None
    return checks.numeric_value(s)


def _round_tuple(s: str) -> str:
    if len(s) > 2 and s[0] == "(" and s[-1] == ")" and "," in s:
        items = []
        for item in s[1:-1].split(","):
            v = _numeric_value(item) if "infty" not in item else None
            items.append(str(round(v, 2)) if v is not None else item)
        return "(" + ",".join(items) + ")"
    return s


def mathvision_equal(prediction: str, reference: str) -> str | None:
    """is_equal: exact after clean-up, same set of comma-separated items, or equal at 2 decimals."""
    a, b = _round_tuple(mathvision_clean(prediction)), _round_tuple(mathvision_clean(reference))
    if not a or not b:
        return None
    if a == b:
        return "exact"
    if "," in b and set(b.split(",")) == set(a.split(",")):
        return "set"
    x, y = _numeric_value(a), _numeric_value(b)
    if x is not None and y is not None and round(x, 2) == round(y, 2):
        return "numeric_2dp"
    return None


_MATHVISION_FLAGS = ["the final answer is", "the answer is", "the correct answer is", "the answer should be"]


def mathvision_extract(response: str) -> tuple[str, str]:
    s = bound_response(response).strip()
    rule = "whole_response"
    if ANSWER_PREFIX.lower() in s.lower() and "oxed{" not in s:
        s, rule = extract_answer(s) or "", "answer_prefix"
    for c in "ABCDE":
        if s.endswith((f" {c}.", f" ({c}).")) or s.startswith((f"{c}\n", f"({c})\n", f"({c}) {c}\n")):
            s, rule = c, "letter_pattern"
    tail = s.split("is ")[-1].rstrip(".")
    if re.fullmatch(r"\s*[-+]?(\d+(?:\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*", tail):
        s, rule = tail, "answer_is_number"
    if "oxed{" not in s:
        for flag in _MATHVISION_FLAGS:
            for f in (flag, flag.replace("the", "The")):
                if f in s:
                    s, rule = s.split(f)[-1].strip().split("\n")[0].split(". ")[0], "answer_is"
                else:
                    s = s.split(f)[-1].strip()
    else:
        rule = "boxed"
        if s.count("oxed{") > 1:
            s = "\\boxed{" + s.split("oxed{")[-1]
    ans = mathvision_clean(s)
    for c in "abcde":
        ans = ans.replace(f"({c})", c).replace(f"{{{c}}}", c)
    return ans.rstrip(".").lstrip(":").strip(), rule


def score_mathvision(response: str, problem: dict) -> Verdict:
    choices = list(problem.get("choices") or [])
    answer = str(problem["answer"])
    value = ""
    if choices and len(answer) == 1 and answer.upper() in LETTERS[: len(choices)]:
        value = choices[LETTERS.index(answer.upper())]
    extracted, rule = mathvision_extract(response)
    for reference in [answer, value]:
        kind = mathvision_equal(extracted, reference) if reference else None
        if kind is not None:
            return Verdict(extracted, rule, True, kind)
    if choices and value:
        raw = extract_common(response)[0]
        if raw is not None and choice_letter(raw, choices) == answer.upper():
            return Verdict(extracted, rule, True, "letter")
    elif extracted and match_kind(extracted, answer) is not None:
        return Verdict(extracted, rule, True, "math_verify")
    return Verdict(extracted or None, rule, False, None)


# ---------------------------------------------------------------------------------------------------
# MathVerse and generic


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


SCORERS = {
    "mathse": score_mathse,
    "mathvista": score_mathvista,
    "mathverse": score_mathverse,
    "mathvision": score_mathvision,
    "generic": score_generic,
}


def _extraction(scoring: str, response: str, problem: dict) -> tuple[str | None, str]:
    """What a scheme extracts from a response (cheap: no symbolic check), for a row whose check was cut short."""
    if scoring == "mathse":
        return _extract_mathse(response)
    if scoring == "mathvision":
        return mathvision_extract(response)
    if scoring == "mathvista":
        meta = _meta(problem)
        qtype = meta.get("question_type") or ("multi_choice" if problem["answer_type"] == "choice" else "free_form")
        choices = list(problem.get("choices") or [])
        found, rule = mathvista_extract(response, qtype, meta.get("answer_type") or problem["answer_type"], choices)
        return found or None, rule
    return extract_common(response)


def score_response(scoring: str, response: str, problem: dict) -> Verdict:
    """One row's verdict by a scheme's rules, as one bounded check: a row cut short by a limit is wrong, with
    the reason in `check` (see grading.checked)."""
    try:
        scorer = SCORERS[scoring]
    except KeyError:
        raise ValueError(f"unknown scoring {scoring!r}; known: {sorted(SCORERS)}") from None
    with checks.budget() as b:
        try:
            v = scorer(response, problem)
        except checks.CheckTimeout:
            extracted, rule = _extraction(scoring, response, problem)
            return Verdict(extracted, rule, False, None, checks.TIMEOUT)
    if b.reason in (checks.TIMEOUT, checks.MEMORY, checks.ERROR):
        return Verdict(v.extracted, v.rule, False, None, b.reason)
    return replace(v, check=None if v.correct else b.reason)


# An answer found by an LLM extractor is restated in the sentence each benchmark's own rules take first, so
# that it is normalised and compared exactly as an answer the rules had found.
_RESTATE = {"mathse": ANSWER_PREFIX + " {}.", "mathvista": 'The answer is "{}".'}
LLM_RULE = "llm_extractor"

# extractor(items) -> one answer (or None) per (problem, response) item; it has a `.name`, recorded per row.
Extractor = Callable[[list[tuple[dict, str]]], list[str | None]]


def score_extracted(scoring: str, extracted: str, problem: dict) -> Verdict:
    """Score an answer taken from a response by other means (the LLM extractor) by the suite's rules."""
    v = score_response(scoring, _RESTATE.get(scoring, "The answer is {}.").format(extracted), problem)
    return Verdict(extracted, LLM_RULE, v.correct, v.matched_by, v.check)


def score_table(
    problems: pl.DataFrame, responses: list[str], scoring: str, extractor: Extractor | None = None
) -> pl.DataFrame:
    """Score rows (problems and responses aligned): the score artifact's columns short of provenance.

    With an `extractor`, the responses where the rules find no answer (rule `none`) are sent to it, and the
    answers it finds are scored by the same rules (rule `llm_extractor`, column `extractor` its name).
    """
    rows = list(problems.iter_rows(named=True))
    verdicts = [score_response(scoring, r, p) for p, r in zip(rows, responses, strict=True)]
    used = [None] * len(rows)
    cut = [v.check for v in verdicts if v.check]
    if cut:
        log.warning("%d of %d answer checks cut short (wrong, reason in `check`): %s", len(cut), len(rows),
                    ", ".join(f"{cut.count(r)} {r}" for r in sorted(set(cut))))  # fmt: skip
    if extractor is not None:
        todo = [i for i, v in enumerate(verdicts) if v.rule == "none" and (responses[i] or "").strip()]
        answers = extractor([(rows[i], responses[i]) for i in todo]) if todo else []
        for i, answer in zip(todo, answers, strict=True):
            if answer:
                verdicts[i], used[i] = score_extracted(scoring, answer, rows[i]), extractor.name
        log.info("answer extractor %s: %d of %d responses had no rule answer; %d extracted",
                 extractor.name, len(todo), len(rows), sum(u is not None for u in used))  # fmt: skip
    return pl.DataFrame(
        {
            "problem_id": problems["problem_id"],
            "source": problems["source"] if "source" in problems.columns else [None] * problems.height,
            "response": responses,
            "extracted": [v.extracted for v in verdicts],
            "rule": [v.rule for v in verdicts],
            "answer": problems["answer"],
            "correct": [v.correct for v in verdicts],
            "matched_by": [v.matched_by for v in verdicts],
            "check": [v.check for v in verdicts],
            "scoring": [scoring] * problems.height,
            "extractor": used,
        },
        schema={
            "problem_id": pl.String,
            "source": pl.String,
            "response": pl.String,
            "extracted": pl.String,
            "rule": pl.String,
            "answer": pl.String,
            "correct": pl.Boolean,
            "matched_by": pl.String,
            "check": pl.String,
            "scoring": pl.String,
            "extractor": pl.String,
        },
    )


# Per-benchmark breakdowns the official scripts report (keys of the problems' metadata).
BREAKDOWNS = {"mathvista": ["task"], "mathverse": ["problem_version"], "mathvision": ["subject", "level"]}


def breakdown(scores: pl.DataFrame, problems: pl.DataFrame, scoring: str) -> pl.DataFrame:
    """Accuracy per metadata key (MathVerse per problem version, MATH-Vision per subject and level)."""
    schema = {"key": pl.String, "value": pl.String, "n": pl.Int64, "accuracy": pl.Float64}
    keys = BREAKDOWNS.get(scoring, [])
    if not keys:
        return pl.DataFrame(schema=schema)
    meta = {pid: _meta({"metadata": m}) for pid, m in problems.select("problem_id", "metadata").iter_rows()}
    rows = []
    for key in keys:
        values = [str(meta.get(pid, {}).get(key)) for pid in scores["problem_id"]]
        table = scores.select("correct").with_columns(value=pl.Series(values, dtype=pl.String))
        for value, group in table.group_by("value", maintain_order=True):
            rows.append({"key": key, "value": value[0], "n": group.height, "accuracy": group["correct"].mean()})
    return pl.DataFrame(rows, schema=schema).sort("key", "value")


def score_responses(
    problems: pl.DataFrame, responses: pl.DataFrame, scoring: str, extractor: Extractor | None = None
) -> tuple[pl.DataFrame, int]:
    """Score a table of responses (`problem_id`, `response`) against problem parquet rows.

    Responses may be keyed by the canonical problem_id or by the benchmark's published id (metadata
    `source_id`, e.g. MathVista's pid). A problem without a response is scored as an empty response
    (wrong), as the official scripts count it; returns the scores and how many had no response.
    """
    for col in ("problem_id", "response"):
        if col not in responses.columns:
            raise ValueError(f"responses need columns problem_id and response; found {responses.columns}")
    responses = responses.select(pl.col("problem_id").cast(pl.String), pl.col("response").cast(pl.String))
    dup = responses.filter(pl.col("problem_id").is_duplicated())["problem_id"].unique().to_list()
    if dup:
        raise ValueError(f"responses: duplicated problem_id {dup[:5]}")
    by_id = dict(responses.iter_rows())
    source_ids = [str(_meta({"metadata": m}).get("source_id")) for m in problems["metadata"]]
    known = set(problems["problem_id"]) | set(source_ids)
    unknown = [pid for pid in by_id if pid not in known]
    if unknown:
        raise ValueError(f"responses: {len(unknown)} problem_id not in the problems, e.g. {unknown[:5]}")
    texts, missing = [], 0
    for pid, sid in zip(problems["problem_id"], source_ids, strict=True):
        text = by_id.get(pid, by_id.get(sid))
        missing += text is None
        texts.append(text or "")
    return score_table(problems, texts, scoring, extractor), missing
