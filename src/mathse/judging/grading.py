"""Answer extraction and checking, shared by the rule ORM and evaluation (the reward reuses the evaluator).

Checking goes fast path first (exact text, then numbers compared at the problem's precision) and falls
back to math-verify for symbolic equivalence (so 1/2, 0.5 and \\frac{1}{2} agree). math-verify runs through
`mathse.judging.checks`: cheap guards first, then a worker process with a time and memory limit, so one hostile
answer is a verdict (WRONG, with the reason in the row's `check` column), never a hang. Responses are
capped and runs of spaces collapsed before any pattern sees them, and the patterns are linear.
"""

from __future__ import annotations

import logging
import math
import re

import polars as pl

from mathse.judging import checks
from mathse.prompts import ANSWER_PREFIX

# Longest answer string handed to math-verify; longer strings are compared textually only.
MAX_SYMBOLIC_CHARS = 200
# Responses are matched on their last this many characters (the answer is at the end), after runs of
# spaces and tabs are collapsed to one space, so that no pattern ever sees 100,000 characters.
MAX_RESPONSE_CHARS = 20_000
_SPACE_RUN = r"[ \t]{2,}"

# The answer sentence (its words apart by spaces or tabs), the blank after it (group 1) and the rest of that
# line (group 2, stripped by the caller): `[^\n]*` always matches, so nothing backtracks. A sentence followed
# only by newlines at the very end is not an answer (as before).
_PREFIX_PATTERN = r"[ \t]+".join(re.escape(word) for word in ANSWER_PREFIX.split())
_ANSWER_RE = re.compile(_PREFIX_PATTERN + r"(\s*:?\s*)([^\n]*)", re.IGNORECASE)
_BOXED_RE = re.compile(r"\\boxed\{((?:[^{}]|\{[^{}]*\})*)\}")
_NUMBER_RE = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$")

log = logging.getLogger(__name__)


def bound_response(response: str | None) -> str:
    """What the extraction patterns see of a response: runs of spaces collapsed, the last characters kept."""
    text = re.sub(_SPACE_RUN, " ", response or "")
    return text[-MAX_RESPONSE_CHARS:]


def _dangling(match: re.Match) -> bool:
    """An answer sentence with nothing after it but newlines, at the end of the response."""
    return not match.group(2) and not match.group(1).strip("\n")


def has_answer_sentence(text: str) -> bool:
    return _ANSWER_RE.search(text) is not None


def extract_answer(response: str) -> str | None:
    """The final answer of a path: after the last 'The answer to this problem is', else the last \\boxed{}."""
    text = bound_response(response)
    matches = list(_ANSWER_RE.finditer(text))
    if matches and _dangling(matches[-1]):
        matches.pop()
    if matches:
        answer = matches[-1].group(2).strip()
        answer = answer.rstrip(".").strip()
        return answer.strip("$ ") or None
    boxed = _BOXED_RE.findall(text)
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


def _fast_kind(
    extracted: str | None, reference: str, precision: int | None = None
) -> tuple[str | None, tuple[str, str] | None]:
    """`match_kind` without math-verify: (kind, None) when settled, else (None, the pair math-verify decides)."""
    if extracted is None:
        return None, None
    a, b = normalize(extracted), normalize(reference)
    if a == b:
        return "exact", None
    x, y = _as_number(a), _as_number(b)
    if x is not None and y is not None and math.isfinite(x) and math.isfinite(y):  # 10^400 digits: inf
        if precision is not None:
            return ("numeric" if round(x, precision) == round(y, precision) else None), None
        return ("numeric" if abs(x - y) <= 1e-9 * max(1.0, abs(y)) else None), None
    extracted, reference = extracted.strip(), reference.strip()
    if max(len(a), len(b), len(extracted), len(reference)) > MAX_SYMBOLIC_CHARS:
        return None, None
    return None, (extracted, reference)


def match_kind(extracted: str | None, reference: str, precision: int | None = None) -> str | None:
    """How an extracted answer equals the reference: `exact`, `numeric` or `math_verify`; None if it does not."""
    kind, pair = _fast_kind(extracted, reference, precision)
    if pair is None:
        return kind
    return "math_verify" if checks.symbolic_equal(*pair) else None


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


def checked(fn, *args) -> tuple[bool, str | None]:
    """`fn(*args)` (an answer check returning a bool) as one bounded check: (correct, reason).

    reason is None when the check ran to its end; `timeout`, `memory` or `error` when a limit cut it short
    (then the row is wrong, whatever the rest found); `too_large` when a cheap guard refused a part of it
    (the rest of the check still counts). See `mathse.judging.checks`.
    """
    correct, reason = checks.bounded(fn, *args, default=False)
    if reason in (checks.TIMEOUT, checks.MEMORY, checks.ERROR):
        return False, reason
    return bool(correct), None if correct else reason


def check_answer(
    extracted: str | None, reference: str, precision: int | None = None, choices: list[str] | None = None
) -> tuple[bool, str | None]:
    """`answer_correct` bounded in time and memory: (correct, reason), see `checked`."""
    return checked(answer_correct, extracted, reference, precision, choices)


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


def extract_answers(responses: pl.Series) -> pl.Series:
    """`extract_answer` on every row: column-wise, and in Python the rare rows the expressions are not exact on.

    The expressions read the responses as they are: collapsing runs of spaces before matching changes only
    runs inside the answer found (the patterns allow any blank), so the answers are collapsed instead. Left
    to Python: \x1c-\x1f (whitespace to Python, not to Rust), responses over the cap, and an empty answer
    after the sentence (it may be a bare sentence at the end, which does not count: see _dangling).
    """
    answer_re = "(?i)" + _ANSWER_RE.pattern
    found = pl.select(
        last=pl.lit(responses).str.extract_all(answer_re).list.last().str.extract(answer_re, 2),
        boxed=pl.lit(responses).str.extract_all(_BOXED_RE.pattern).list.last().str.extract(_BOXED_RE.pattern, 1),
    )
    by_prefix = pl.col("last").str.strip_chars().str.strip_chars_end(".").str.strip_chars().str.strip_chars("$ ")
    answer = pl.coalesce(by_prefix, pl.col("boxed").str.strip_chars())  # an empty answer after the prefix: no \boxed
    answer = pl.when(answer == "").then(None).otherwise(answer.str.replace_all(_SPACE_RUN, " "))
    found = found.select(extracted=answer, empty=pl.col("last") == "")
    out = found["extracted"]
    odd = found["empty"].fill_null(False) | (responses.str.len_bytes() > MAX_RESPONSE_CHARS)
    odd = (odd | responses.str.contains(_PY_ONLY_WHITESPACE)).fill_null(False).arg_true()
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


def answers_match_column(rows: pl.DataFrame) -> pl.DataFrame:
    """`checked(answers_match, extracted, answer, precision)` on every row of `rows`: columns answer_correct
    and check (the reason a check was cut short, see `checked`).

    Exact and numeric comparison are polars expressions over the distinct (extracted, answer, precision);
    the ones they cannot settle (math-verify's cases, non-ASCII text, numbers near a rounding tie) go to
    `answers_match`, so math-verify runs on distinct pairs only, memoised, each pair one bounded check.
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
    settled = rows.select(keys).unique().with_columns(verdict=verdict, check=pl.lit(None, pl.String))
    todo = settled.filter(pl.col("verdict").is_null())
    if todo.height:
        pairs = list(todo.select(keys).iter_rows())
        # the math-verify calls these need run first in batches (one wake-up of the worker per batch)
        checks.prefetch([("verify", *pair) for r in pairs if (pair := _fast_kind(*r)[1])])
        results = [checked(answers_match, *r) for r in pairs]
        log.info("math-verify on up to %d distinct answer pairs", todo.height)
        done = todo.select(keys).with_columns(
            checked=pl.Series([c for c, _ in results], dtype=pl.Boolean),
            reason=pl.Series([r for _, r in results], dtype=pl.String),
        )
        settled = settled.join(done, on=keys, how="left", nulls_equal=True).select(
            *keys, verdict=pl.coalesce("verdict", "checked"), check=pl.coalesce("check", "reason")
        )
    settled = rows.select(keys).join(settled, on=keys, how="left", nulls_equal=True, maintain_order="left")
    return settled.select(answer_correct="verdict", check="check")


def _worse(a: str | None, b: str | None) -> str | None:
    return max(a, b, key=lambda r: checks._SEVERITY.get(r, 0))


def answer_correct_column(rows: pl.DataFrame) -> pl.DataFrame:
    """`check_answer` on every row of `rows` (problem_id, extracted, answer, precision, choices): columns
    answer_correct and check.

    `answers_match_column`, then `same_choice` once per distinct (problem_id, extracted) among the choice
    problems' rows it found wrong (not those a limit cut short: they stay wrong).
    """
    rows = rows.with_columns(answers_match_column(rows))
    keys = ["problem_id", "extracted"]
    wrong_choice = (
        ~pl.col("answer_correct")
        & pl.col("extracted").is_not_null()
        & (pl.col("choices").list.len() > 0)
        & ~pl.col("check").is_in([checks.TIMEOUT, checks.MEMORY, checks.ERROR]).fill_null(False)
    )
    todo = rows.filter(wrong_choice).unique(keys, maintain_order=True)
    if not todo.height:
        return rows.select("answer_correct", "check")
    same, reasons = [], []
    for e, a, c, first in todo.select("extracted", "answer", "choices", "check").iter_rows():
        ok, reason = checked(same_choice, e, a, c)
        same.append(ok)
        reasons.append(None if ok else _worse(first, reason))
    todo = todo.select(*keys, same=pl.Series(same, dtype=pl.Boolean), reason=pl.Series(reasons, dtype=pl.String))
    joined = rows.select(*keys, "answer_correct", "check").join(todo, on=keys, how="left", maintain_order="left")
    return joined.select(
        answer_correct=pl.col("answer_correct") | pl.col("same").fill_null(False),
        check=pl.when(pl.col("same").is_not_null()).then("reason").otherwise("check"),
    )
