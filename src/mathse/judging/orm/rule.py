"""The rule judge (`orm.backend: rule`): the verdict is math-verify's answer check (via `grading`, the same checker
the evaluation uses); the error step is the first step of the path that disagrees with the problem's reference
trace. `judge_path` judges one path; `judge_table` gives the same verdicts column-wise, for a million paths."""

from __future__ import annotations

import polars as pl

from mathse.judging.grading import (
    answer_correct_column,
    check_answer,
    extract_answer,
    extract_answers,
    normalize,
    normalize_expr,
)
from mathse.judging.orm.verdict import CORRECT_VERDICT, VERDICT_SCHEMA, Verdict
from mathse.prompts import STEP_PATTERN, parse_steps

JUDGE_NAME = "rule-orm-v1"
# Text the column-wise wrong-step analysis handles (other text takes the per-row functions).
_PLAIN_TEXT = r"^[\t\n\x0b\x0c\r\x20-\x7e]*$"
_PRINTABLE = r"^[\x20-\x7e]*$"


def find_error_step(steps: list[str], reference: list[str]) -> tuple[int, str]:
    """1-based index of the first step that departs from the reference trace, and why."""
    if not steps:
        return 1, "The response has no numbered reasoning steps."
    for i, ref in enumerate(reference):
        if i >= len(steps):
            return i + 1, f"The path stops after step {i}; the reasoning needed to reach the answer is missing."
        if normalize(steps[i]) != normalize(ref):
            # Quote the path, never the reference step: it can hold the final answer (the paper's ORM
            # prompt forbids stating it), and the teacher has to fix the step, not copy it.
            return i + 1, (
                f"Step {i + 1} states '{steps[i]}', which does not follow from the image and the steps before it."
            )
    if len(steps) > len(reference):
        return len(reference) + 1, f"Step {len(reference) + 1} goes beyond the solution and is not needed."
    return len(steps) + 1, "The steps are right but the stated final answer does not follow from them."


def wrong_verdict(response: str, extracted: str | None, reference_steps: list[str]) -> Verdict:
    """The verdict on a path whose answer is wrong: the first wrong step, why, and how to fix it."""
    if not reference_steps:
        analysis = (
            "The path gives no final answer."
            if extracted is None
            else f"The final answer {extracted} does not match the reference answer."
        )
        return Verdict("WRONG", None, analysis, "Recheck the reasoning and the final answer.")
    step, analysis = find_error_step(parse_steps(response), reference_steps)
    if extracted is None:
        analysis += " The path gives no final answer."
    suggestion = (
        f"Keep steps 1 to {step - 1} and redo the reasoning from step {step}."
        if step > 1
        else ("Read the values from the image again and redo the reasoning from step 1.")
    )
    return Verdict("WRONG", step, analysis, suggestion)


def judge_path_checked(
    response: str,
    answer: str,
    reference_steps: list[str],
    precision: int | None = None,
    choices: list[str] | None = None,
) -> tuple[str | None, bool, str | None, Verdict]:
    """Judge one path: (extracted answer, answer correct, check, verdict). The reference for `judge_table`.

    `check` is why the bounded answer check was cut short (`timeout`, ...; see grading.checked), else None.
    """
    extracted = extract_answer(response)
    correct, check = check_answer(extracted, answer, precision, choices)
    if correct:
        return extracted, True, None, CORRECT_VERDICT
    return extracted, False, check, wrong_verdict(response, extracted, reference_steps)


def judge_path(
    response: str,
    answer: str,
    reference_steps: list[str],
    precision: int | None = None,
    choices: list[str] | None = None,
) -> tuple[str | None, bool, Verdict]:
    """Judge one path: (extracted answer, answer correct, verdict)."""
    extracted, correct, _, verdict = judge_path_checked(response, answer, reference_steps, precision, choices)
    return extracted, correct, verdict


def _verdict_row(extracted: str | None, correct: bool, check: str | None, v: Verdict) -> dict:
    return {
        "extracted": extracted,
        "answer_correct": correct,
        "check": check,
        "status": v.status,
        "error_step": v.error_step,
        "error_analysis": v.error_analysis,
        "improvement_suggestion": v.improvement_suggestion,
        "judge": JUDGE_NAME,
        "judgment_json": v.to_json(),
    }


def judge_table_per_row(paths: pl.DataFrame, problems: pl.DataFrame) -> pl.DataFrame:
    """`judge_table` one row at a time through `judge_path`: the oracle in tests, the baseline in benchmarks."""
    ref = {
        r["problem_id"]: r
        for r in with_choices(problems)
        .select("problem_id", "answer", "precision", "solution_steps", "choices")
        .iter_rows(named=True)
    }
    out = []
    for pid, response in paths.select("problem_id", "response").iter_rows():
        if pid not in ref:
            raise KeyError(f"path for unknown problem_id {pid!r}")
        p = ref[pid]
        verdict = judge_path_checked(response, p["answer"], p["solution_steps"] or [], p["precision"], p["choices"])
        out.append(_verdict_row(*verdict))
    return pl.DataFrame(out, schema=VERDICT_SCHEMA)


def _verdicts_in_python(wrong: pl.DataFrame, steps: dict) -> pl.DataFrame:
    verdicts = [wrong_verdict(r, extracted, steps.get(pid) or []) for pid, r, extracted in wrong.iter_rows()]
    return wrong.select("problem_id", "response").with_columns(
        error_step=pl.Series([v.error_step for v in verdicts], dtype=pl.Int64),
        error_analysis=pl.Series([v.error_analysis for v in verdicts], dtype=pl.String),
        improvement_suggestion=pl.Series([v.improvement_suggestion for v in verdicts], dtype=pl.String),
        judgment_json=pl.Series([v.to_json() for v in verdicts], dtype=pl.String),
    )


def _json_string(text: pl.Expr) -> pl.Expr:
    """json.dumps of printable ASCII text (callers check that it is)."""
    return (
        pl.lit('"')
        + text.str.replace_all("\\", "\\\\", literal=True).str.replace_all('"', '\\"', literal=True)
        + pl.lit('"')
    )


def wrong_verdicts(wrong: pl.DataFrame, steps: pl.DataFrame) -> pl.DataFrame:
    """`wrong_verdict` on each row of `wrong` (problem_id, response, extracted), against `steps`
    (problem_id, solution_steps): the WRONG verdict columns, keyed by (problem_id, response).

    Column-wise for printable ASCII text (steps parsed, normalised and compared to the reference trace as
    polars expressions); other text goes through `wrong_verdict` itself.
    """
    plain_steps = steps.select(
        "problem_id",
        ref=pl.col("solution_steps").fill_null([]),
        ref_plain=pl.col("solution_steps").fill_null([]).list.join("\n").str.contains(_PLAIN_TEXT),
    )
    w = wrong.join(plain_steps, on="problem_id", how="left", maintain_order="left").with_row_index("w")
    plain = pl.col("response").str.contains(_PLAIN_TEXT) & pl.col("ref_plain")
    other = w.filter(~plain)
    w = w.filter(plain)
    # steps of each path: lines as str.splitlines cuts ASCII text, then STEP_RE's text of each Step line
    lines = w.select("w", line=pl.col("response").str.replace_all(r"\r\n|[\r\x0b\x0c]", "\n").str.split("\n"))
    found = (
        lines.explode("line")
        .select("w", text=pl.col("line").str.extract("(?i)" + STEP_PATTERN, 2))
        .drop_nulls("text")
        .with_columns(k=pl.int_range(pl.len()).over("w"))
    )
    n_steps = found.group_by("w").agg(n_steps=pl.len())
    refs = (
        w.filter(pl.col("ref").list.len() > 0)
        .select("w", "ref")
        .explode("ref")
        .with_columns(k=pl.int_range(pl.len()).over("w"))
    )
    first_bad = (
        refs.join(found, on=["w", "k"], how="left")
        .filter(pl.col("text").is_null() | (normalize_expr(pl.col("text")) != normalize_expr(pl.col("ref"))))
        .sort("w", "k")
        .group_by("w", maintain_order=True)
        .first()
    )
    n, k, n_ref = pl.col("n_steps"), pl.col("k"), pl.col("ref").list.len()
    w = (
        w.join(n_steps, on="w", how="left")
        .with_columns(n_steps=pl.col("n_steps").fill_null(0), n_ref=n_ref)
        .drop("ref")
        .join(first_bad, on="w", how="left")
    )
    n_ref = pl.col("n_ref")
    step = (
        pl.when(n_ref == 0)
        .then(None)
        .when(n == 0)
        .then(1)
        .when(k.is_not_null())
        .then(k + 1)
        .when(n > n_ref)
        .then(n_ref + 1)
        .otherwise(n + 1)
        .cast(pl.Int64)
    )
    no_answer = pl.col("extracted").is_null()
    analysis = (
        pl.when(n_ref == 0)
        .then(
            pl.when(no_answer)
            .then(pl.lit("The path gives no final answer."))
            .otherwise(pl.format("The final answer {} does not match the reference answer.", "extracted"))
        )
        .otherwise(
            pl.when(n == 0)
            .then(pl.lit("The response has no numbered reasoning steps."))
            .when(k.is_not_null() & pl.col("text").is_null())
            .then(pl.format("The path stops after step {}; the reasoning needed to reach the answer is missing.", k))
            .when(k.is_not_null())
            .then(
                pl.format(
                    "Step {} states '{}', which does not follow from the image and the steps before it.", k + 1, "text"
                )
            )
            .when(n > n_ref)
            .then(pl.format("Step {} goes beyond the solution and is not needed.", n_ref + 1))
            .otherwise(pl.lit("The steps are right but the stated final answer does not follow from them."))
            + pl.when(no_answer).then(pl.lit(" The path gives no final answer.")).otherwise(pl.lit(""))
        )
    )
    suggestion = (
        pl.when(n_ref == 0)
        .then(pl.lit("Recheck the reasoning and the final answer."))
        .when(pl.col("error_step") > 1)
        .then(
            pl.format("Keep steps 1 to {} and redo the reasoning from step {}.", pl.col("error_step") - 1, "error_step")
        )
        .otherwise(pl.lit("Read the values from the image again and redo the reasoning from step 1."))
    )
    w = w.with_columns(error_step=step, error_analysis=analysis).with_columns(improvement_suggestion=suggestion)
    w = w.with_columns(
        judgment_json=pl.lit('{"status": "WRONG", "error_step": ')
        + pl.col("error_step").cast(pl.String).fill_null("null")
        + pl.lit(', "error_analysis": ')
        + _json_string(pl.col("error_analysis"))
        + pl.lit(', "improvement_suggestion": ')
        + _json_string(pl.col("improvement_suggestion"))
        + pl.lit("}")
    )
    cols = ["problem_id", "response", "error_step", "error_analysis", "improvement_suggestion", "judgment_json"]
    # json.dumps escapes control characters (a tab inside a step) and non-ASCII: left to Python
    escaped = w.filter(~pl.col("error_analysis").str.contains(_PRINTABLE))
    parts = [w.filter(pl.col("error_analysis").str.contains(_PRINTABLE)).select(cols)]
    if other.height or escaped.height:
        ref = dict(steps.iter_rows())
        parts.append(_verdicts_in_python(pl.concat([other.select(wrong.columns), escaped.select(wrong.columns)]), ref))
    return pl.concat(parts)


def with_choices(problems: pl.DataFrame) -> pl.DataFrame:
    """`problems` with a `choices` column (empty options where a caller's table has none)."""
    if "choices" in problems.columns:
        return problems.with_columns(pl.col("choices").fill_null([]))
    return problems.with_columns(choices=pl.lit([], dtype=pl.List(pl.String)))


def judge_table(paths: pl.DataFrame, problems: pl.DataFrame) -> pl.DataFrame:
    """Judge every row of `paths` (problem_id, response, ...) against `problems`: the verdict columns.

    The same verdicts as `judge_path` row by row, computed column-wise so a million paths take seconds:
    the answer check is `grading.answer_correct_column` (polars expressions, math-verify only on distinct
    unsettled pairs, options of choice problems named by letter or text), and the wrong-step analysis runs
    once per distinct wrong (problem_id, response).
    """
    problems = (
        with_choices(problems)
        .select("problem_id", "answer", "precision", "solution_steps", "choices")
        .unique("problem_id", keep="last", maintain_order=True)
    )
    unknown = paths.select("problem_id").join(problems, on="problem_id", how="anti")
    if unknown.height:
        raise KeyError(f"path for unknown problem_id {unknown['problem_id'][0]!r}")
    rows = paths.select("problem_id", "response").join(
        problems.select("problem_id", "answer", "precision", "choices"),
        on="problem_id",
        how="left",
        maintain_order="left",
    )
    rows = rows.with_columns(extracted=extract_answers(rows["response"]))
    rows = rows.with_columns(answer_correct_column(rows))
    wrong = (
        rows.filter(~pl.col("answer_correct"))
        .select("problem_id", "response", "extracted")
        .unique(["problem_id", "response"], maintain_order=True)
    )
    wrong = wrong_verdicts(wrong, problems.select("problem_id", "solution_steps"))
    correct = pl.col("answer_correct")
    return (
        rows.lazy()
        .select("problem_id", "response", "extracted", "answer_correct", "check")
        .join(wrong.lazy(), on=["problem_id", "response"], how="left", maintain_order="left")
        .select(
            "extracted",
            "answer_correct",
            "check",
            status=pl.when(correct).then(pl.lit("CORRECT")).otherwise(pl.lit("WRONG")),
            error_step=pl.when(correct).then(None).otherwise("error_step"),
            error_analysis=pl.when(correct).then(pl.lit("")).otherwise("error_analysis"),
            improvement_suggestion=pl.when(correct).then(pl.lit("")).otherwise("improvement_suggestion"),
            judge=pl.lit(JUDGE_NAME),
            judgment_json=pl.when(correct).then(pl.lit(CORRECT_VERDICT.to_json())).otherwise("judgment_json"),
        )
        .collect()
        .cast(VERDICT_SCHEMA)
    )
