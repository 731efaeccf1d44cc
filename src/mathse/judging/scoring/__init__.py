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
(mathse.judging.extractor), and its answer is scored by the same rules (rule `llm_extractor`).

Each row's check is bounded in time and memory (`mathse.judging.checks`, the `answer_check` config section): a
row cut short is wrong, with the reason in `check` (`timeout`, `memory`, `too_large`, `error`). Responses are
capped and runs of spaces collapsed before any rule reads them (grading.bound_response), and no pattern
here backtracks.

The shared extraction and the `mathse` scheme live in scoring.common, each benchmark's rules in its own module
(scoring.mathvista, scoring.mathvision, scoring.mathverse); this module dispatches a row to its scheme, bounds
the check, and scores whole tables.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

import polars as pl

from mathse.judging import checks
from mathse.judging.scoring.common import Verdict, _extract_mathse, _meta, extract_common, score_mathse
from mathse.judging.scoring.mathverse import score_generic, score_mathverse
from mathse.judging.scoring.mathvision import mathvision_extract, score_mathvision
from mathse.judging.scoring.mathvista import mathvista_extract, score_mathvista
from mathse.prompts import ANSWER_PREFIX

log = logging.getLogger(__name__)

SCORINGS = ("mathse", "mathvista", "mathverse", "mathvision", "generic")


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
