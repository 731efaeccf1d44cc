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

import polars as pl

from mathse.prompts import ANSWER_PREFIX

# Longest answer string handed to math-verify; longer strings are compared textually only.
MAX_SYMBOLIC_CHARS = 200

_ANSWER_RE = re.compile(re.escape(ANSWER_PREFIX) + r"\s*:?\s*(.+?)\s*$", re.IGNORECASE | re.MULTILINE)
_BOXED_RE = re.compile(r"\\boxed\{((?:[^{}]|\{[^{}]*\})*)\}")
_NUMBER_RE = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$")

log = logging.getLogger(__name__)
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
def _parsed(text: str) -> list:
    """math-verify's parse of one answer, memoised: parsing costs milliseconds, verifying a pair ~0.1 ms."""
    from math_verify import parse

    return parse(f"${text}$", parsing_timeout=None)


@lru_cache(maxsize=65536)
def _symbolic_equal(extracted: str, reference: str) -> bool:
    from math_verify import verify

    gold = _parsed(reference)
    pred = _parsed(extracted)
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


LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _plain(text: str) -> str:
    text = re.sub(r"\\(?:text|mathrm)\{([^{}]*)\}", r"\1", text)
    text = text.replace("^\\circ", "").replace("^{\\circ}", "").replace("°", "").replace("\\%", "").replace("%", "")
    return re.sub(r"\s+", "", normalize(text))


def choice_letter(text: str | None, choices: list[str]) -> str | None:
    """The option a text names: 'B', '(B)', 'B.', '(B) 8/11', 'Option B', or the text of choice B.

    With no known choices (a MathVerse question whose options are only in the image) any letter counts.
    """
    if text is None:
        return None
    t = re.sub(r"\\(?:text|mathrm|textbf)\{([^{}]*)\}", r"\1", text).strip().strip("*$ ").strip()
    n = len(choices) if choices else len(LETTERS)
    m = re.fullmatch(r"(?:option|choice)?\s*\(?([A-Z])\)?\s*[.:)]?", t, re.IGNORECASE)
    if m and (m.group(1).isupper() or t.startswith("(") or t.lower().startswith(("option", "choice"))):
        letter = m.group(1).upper()
        return letter if LETTERS.index(letter) < n else None
    m = re.match(r"\(?([A-Z])\)[\s:.]", t + " ")
    if m and LETTERS.index(m.group(1)) < n:
        return m.group(1)
    for i, choice in enumerate(choices):
        if _plain(t) == _plain(choice):
            return LETTERS[i]
    for i, choice in enumerate(choices):
        if match_kind(t, choice) is not None:
            return LETTERS[i]
    return None


def same_choice(extracted: str | None, reference: str, choices: list[str] | None) -> bool:
    """Multiple choice: do the extracted answer and the reference name the same option, each by its letter
    ('B', '(B)', '(B) 8/11') or by the option's text? False for a problem without options."""
    if not choices or extracted is None:
        return False
    named = choice_letter(extracted, choices)
    return named is not None and named == choice_letter(reference, choices)


def answer_correct(
    extracted: str | None, reference: str, precision: int | None = None, choices: list[str] | None = None
) -> bool:
    """The rule ORM's answer check: the answers are equal, or they name the same option of a choice problem."""
    return answers_match(extracted, reference, precision) or same_choice(extracted, reference, choices)


# Column-wise versions of the checks above, for judging a million paths at once. The functions above stay
# the reference (evaluation uses them; tests compare the two on every row of a varied sample). Python's
# `\s` and str.strip() also treat \x1c-\x1f as whitespace and Rust's regex does not, so text holding those
# characters, and any non-ASCII answer, is left to the Python functions.
_PY_ONLY_WHITESPACE = r"[\x1c-\x1f]"
_PLAIN_ASCII = r"^[\t\n\x0b\x0c\r\x20-\x7e]*$"
_ASCII_NUMBER = r"^[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?$"
# Numbers compared at a precision are settled column-wise only when far from a rounding tie.
_ROUNDING_MARGIN = 1e-6
_ROUNDING_RANGE = 1e9


def extract_answer_expr(response: pl.Expr) -> pl.Expr:
    """`extract_answer` as a polars expression (exact for text without \\x1c-\\x1f; see `extract_answers`)."""
    answer_re = "(?im)" + _ANSWER_RE.pattern
    by_prefix = (
        response.str.extract_all(answer_re)
        .list.last()
        .str.extract(answer_re, 1)
        .str.strip_chars()
        .str.strip_chars_end(".")
        .str.strip_chars()
        .str.strip_chars("$ ")
    )
    boxed = response.str.extract_all(_BOXED_RE.pattern).list.last().str.extract(_BOXED_RE.pattern, 1).str.strip_chars()
    answer = pl.coalesce(by_prefix, boxed)  # an empty answer after the prefix does not fall back to \boxed
    return pl.when(answer == "").then(None).otherwise(answer)


def extract_answers(responses: pl.Series) -> pl.Series:
    """`extract_answer` on every row: column-wise, the rare text the regex engines disagree on in Python."""
    out = pl.select(extract_answer_expr(pl.lit(responses))).to_series().alias("extracted")
    odd = responses.str.contains(_PY_ONLY_WHITESPACE).fill_null(False).arg_true()
    if len(odd):
        out = out.scatter(odd, [extract_answer(r) for r in responses.gather(odd).to_list()])
    return out


def normalize_expr(text: pl.Expr) -> pl.Expr:
    """`normalize` as a polars expression (the same for printable ASCII text)."""
    text = text.str.strip_chars().str.strip_chars("$").str.strip_chars()
    text = text.str.replace_all(r"\\(text|mathrm)\{([^{}]*)\}", "${2}")
    thousands = text.str.contains(r"^[-+]?\d{1,3}(,\d{3})+(\.\d+)?$")
    text = pl.when(thousands).then(text.str.replace_all(",", "", literal=True)).otherwise(text)
    return text.str.replace_all(r"\s+", " ").str.strip_chars_end(".").str.to_lowercase()


def number_expr(normalized: pl.Expr) -> pl.Expr:
    """`_as_number` of already normalised text (which, like `_as_number`, normalises once more)."""
    t = normalize_expr(normalized).str.strip_chars_end("%")
    return pl.when(t.str.contains(_ASCII_NUMBER)).then(t.cast(pl.Float64, strict=False))


def answers_match_column(rows: pl.DataFrame) -> pl.Series:
    """`answers_match(extracted, answer, precision)` on every row of `rows`.

    Exact and numeric comparison are polars expressions over the distinct (extracted, answer, precision);
    the ones they cannot settle (math-verify's cases, non-ASCII text, numbers near a rounding tie) go to
    `answers_match`, so math-verify runs on distinct pairs only, memoised.
    """
    e, ans, prec = pl.col("extracted"), pl.col("answer"), pl.col("precision")
    a, b = normalize_expr(e), normalize_expr(ans)
    x, y = number_expr(a), number_expr(b)
    scale = pl.lit(10.0).pow(prec.cast(pl.Float64))
    sx, sy = x * scale, y * scale

    def clear_of_tie(v: pl.Expr) -> pl.Expr:
        return (v.abs() < _ROUNDING_RANGE) & ((v - v.floor() - 0.5).abs() > _ROUNDING_MARGIN)

    plain = e.str.contains(_PLAIN_ASCII) & ans.str.contains(_PLAIN_ASCII)
    finite = x.is_finite() & y.is_finite()
    at_precision = prec.is_not_null() & clear_of_tie(sx) & clear_of_tie(sy)
    verdict = (
        pl.when(e.is_null())
        .then(pl.lit(False))
        .when(~plain)
        .then(None)
        .when(a == b)
        .then(pl.lit(True))
        .when(x.is_null() | y.is_null() | ~finite)
        .then(None)
        .when(prec.is_null())
        .then((x - y).abs() <= 1e-9 * pl.max_horizontal(pl.lit(1.0), y.abs()))
        .when(at_precision)
        .then(sx.round(0) == sy.round(0))
    )
    keys = ["extracted", "answer", "precision"]
    # sampled answers repeat: the checks run once per distinct (extracted, answer, precision)
    settled = rows.select(keys).unique().with_columns(verdict=verdict)
    todo = settled.filter(pl.col("verdict").is_null())
    if todo.height:
        checked = pl.Series([answers_match(*r) for r in todo.select(keys).iter_rows()], dtype=pl.Boolean)
        log.info("math-verify on up to %d distinct answer pairs", todo.height)
        settled = settled.join(
            todo.select(keys).with_columns(checked=checked), on=keys, how="left", nulls_equal=True
        ).select(*keys, verdict=pl.coalesce("verdict", "checked"))
    settled = rows.select(keys).join(settled, on=keys, how="left", nulls_equal=True, maintain_order="left")
    return settled["verdict"].alias("answer_correct")


def answer_correct_column(rows: pl.DataFrame) -> pl.Series:
    """`answer_correct` on every row of `rows` (problem_id, extracted, answer, precision, choices).

    `answers_match_column`, then `same_choice` once per distinct (problem_id, extracted) among the choice
    problems' rows it found wrong.
    """
    rows = rows.with_columns(answer_correct=answers_match_column(rows))
    keys = ["problem_id", "extracted"]
    wrong_choice = ~pl.col("answer_correct") & pl.col("extracted").is_not_null() & (pl.col("choices").list.len() > 0)
    todo = rows.filter(wrong_choice).unique(keys, maintain_order=True)
    if not todo.height:
        return rows["answer_correct"]
    same = [same_choice(e, a, c) for e, a, c in todo.select("extracted", "answer", "choices").iter_rows()]
    todo = todo.select(*keys, same=pl.Series(same, dtype=pl.Boolean))
    joined = rows.select(*keys, "answer_correct").join(todo, on=keys, how="left", maintain_order="left")
    return joined.select(pl.col("answer_correct") | pl.col("same").fill_null(False))["answer_correct"]
