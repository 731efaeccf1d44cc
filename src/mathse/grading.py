"""Answer extraction and checking, shared by the rule ORM and evaluation (the reward reuses the evaluator).

Checking goes fast path first (exact text, then numbers compared at the problem's precision) and falls
back to math-verify for symbolic equivalence (so 1/2, 0.5 and \\frac{1}{2} agree). math-verify's own
signal-based timeout is disabled (it only works in the main thread); instead its inputs are capped in
length, which is what makes sympy parsing blow up, and results are memoised per (extracted, reference).
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache

from mathse.prompts import ANSWER_PREFIX

# Longest answer string handed to math-verify; longer strings are compared textually only.
MAX_SYMBOLIC_CHARS = 200

_ANSWER_RE = re.compile(re.escape(ANSWER_PREFIX) + r"\s*:?\s*(.+?)\s*$", re.IGNORECASE | re.MULTILINE)
_BOXED_RE = re.compile(r"\\boxed\{((?:[^{}]|\{[^{}]*\})*)\}")
_NUMBER_RE = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$")

logging.getLogger("math_verify").setLevel(logging.ERROR)


def extract_answer(response: str) -> str | None:
    """The final answer of a path: after the last 'The answer to this problem is', else the last \\boxed{}."""
    matches = _ANSWER_RE.findall(response or "")
    if matches:
        answer = matches[-1].strip()
        answer = answer.rstrip(".").strip()
        return answer.strip("$ ") or None
    boxed = _BOXED_RE.findall(response or "")
    if boxed:
        return boxed[-1].strip() or None
    return None


def normalize(text: str) -> str:
    text = text.strip().strip("$").strip()
    text = re.sub(r"\\(text|mathrm)\{([^{}]*)\}", r"\2", text)
    text = text.replace(",", "") if re.fullmatch(r"[-+]?\d{1,3}(,\d{3})+(\.\d+)?", text) else text
    return re.sub(r"\s+", " ", text).rstrip(".").lower()


def _as_number(text: str) -> float | None:
    t = normalize(text).rstrip("%")
    return float(t) if _NUMBER_RE.match(t) else None


@lru_cache(maxsize=65536)
def _symbolic_equal(extracted: str, reference: str) -> bool:
    from math_verify import parse, verify

    gold = parse(f"${reference}$", parsing_timeout=None)
    pred = parse(f"${extracted}$", parsing_timeout=None)
    if not gold or not pred:
        return False
    return bool(verify(gold, pred, timeout_seconds=None))


def match_kind(extracted: str | None, reference: str, precision: int | None = None) -> str | None:
    """How an extracted answer equals the reference: `exact`, `numeric` or `math_verify`; None if it does not."""
    if extracted is None:
        return None
    a, b = normalize(extracted), normalize(reference)
    if a == b:
        return "exact"
    x, y = _as_number(a), _as_number(b)
    if x is not None and y is not None:
        if precision is not None:
            return "numeric" if round(x, precision) == round(y, precision) else None
        return "numeric" if abs(x - y) <= 1e-9 * max(1.0, abs(y)) else None
    if len(a) > MAX_SYMBOLIC_CHARS or len(b) > MAX_SYMBOLIC_CHARS:
        return None
    return "math_verify" if _symbolic_equal(extracted.strip(), reference.strip()) else None


def answers_match(extracted: str | None, reference: str, precision: int | None = None) -> bool:
    """Is an extracted answer equal to the reference answer?"""
    return match_kind(extracted, reference, precision) is not None
