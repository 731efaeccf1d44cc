"""MATH-Vision scoring: the official evaluate.py extraction and find_math_answer clean-up, and its is_equal,
against the answer letter and the option value (see mathse.judging.scoring for the departures)."""

from __future__ import annotations

import re

from mathse.judging import checks
from mathse.judging.grading import LETTERS, bound_response, choice_letter, extract_answer, match_kind
from mathse.judging.scoring.common import Verdict, extract_common
from mathse.prompts import ANSWER_PREFIX


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
