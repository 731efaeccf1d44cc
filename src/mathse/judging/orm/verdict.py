"""The ORM's verdict: the paper's JSON fields (`status` CORRECT / WRONG, `error_step`, `error_analysis`,
`improvement_suggestion`), the verdict columns every judge writes, and the parsing of a model judge's output
(output that does not parse is status INVALID with the raw text, never counted as correct)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import polars as pl

STATUSES = ("CORRECT", "WRONG")
INVALID = "INVALID"
VERDICT_SCHEMA = {
    "extracted": pl.String,
    "answer_correct": pl.Boolean,
    "check": pl.String,
    "status": pl.String,
    "error_step": pl.Int64,
    "error_analysis": pl.String,
    "improvement_suggestion": pl.String,
    "judge": pl.String,
    "judgment_json": pl.String,
}


@dataclass(frozen=True)
class Verdict:
    status: str
    error_step: int | None
    error_analysis: str
    improvement_suggestion: str

    def to_json(self) -> str:
        """The paper's JSON, in its field order (status first, which a generative ORM then writes first)."""
        return json.dumps(asdict(self))


CORRECT_VERDICT = Verdict("CORRECT", None, "", "")


class VerdictParseError(ValueError):
    pass


def _fenced(text: str) -> str | None:
    """The text of the first ```json ... ``` (or ``` ... ```) block; found without a backtracking pattern."""
    start = text.find("```")
    if start < 0:
        return None
    k = start + 3
    if text[k : k + 4].lower() == "json":
        k += 4
    while k < len(text) and text[k].isspace():
        k += 1
    end = text.find("```", k)
    return None if end < 0 else text[k:end]


def parse_verdict(text: str) -> Verdict:
    """The paper's JSON verdict in a judge's output (fences and surrounding prose allowed).

    Raises VerdictParseError naming what is wrong: no JSON object, truncated or malformed JSON, a status
    other than CORRECT / WRONG, a non-integer error step.
    """
    text = (text or "").strip()
    fenced = _fenced(text)
    if fenced is not None:
        text = fenced.strip()
    start = text.find("{")
    if start < 0:
        raise VerdictParseError("no JSON object in the output")
    try:
        obj, _ = json.JSONDecoder().raw_decode(text[start:])
    except json.JSONDecodeError as err:
        raise VerdictParseError(f"malformed or truncated JSON: {err.msg} at char {err.pos}") from None
    except RecursionError:
        raise VerdictParseError("JSON nested too deeply") from None
    if not isinstance(obj, dict):
        raise VerdictParseError("the JSON is not an object")
    status = obj.get("status")
    if not isinstance(status, str) or status.strip().upper() not in STATUSES:
        raise VerdictParseError(f"status must be CORRECT or WRONG, got {status!r}")
    status = status.strip().upper()
    step = obj.get("error_step")
    if isinstance(step, str) and step.strip().isdigit():
        step = int(step.strip())
    if step is not None and (isinstance(step, bool) or not isinstance(step, int) or step < 1):
        raise VerdictParseError(f"error_step must be a positive integer or null, got {step!r}")

    def text_field(name: str) -> str:
        value = obj.get(name)
        return "" if value is None else value if isinstance(value, str) else json.dumps(value)

    if status == "CORRECT":
        return Verdict("CORRECT", None, text_field("error_analysis"), text_field("improvement_suggestion"))
    return Verdict("WRONG", step, text_field("error_analysis"), text_field("improvement_suggestion"))


def verdict_row(raw: str, extracted: str | None, answer_correct: bool, judge: str, check: str | None = None) -> dict:
    """A model judge's row: the parsed verdict, or INVALID with the reason (the raw text is kept)."""
    try:
        v = parse_verdict(raw)
    except VerdictParseError as err:
        v = Verdict(INVALID, None, f"unparsable judge output: {err}", "")
    return {
        "extracted": extracted,
        "answer_correct": answer_correct,
        "check": check,
        "status": v.status,
        "error_step": v.error_step,
        "error_analysis": v.error_analysis,
        "improvement_suggestion": v.improvement_suggestion,
        "judge": judge,
        "judgment_json": raw,
    }
