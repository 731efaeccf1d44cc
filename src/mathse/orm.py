"""The rule ORM: judges a reasoning path against the reference answer and finds where it went wrong.

It answers in the paper's JSON fields: `status` (CORRECT / WRONG), `error_step`, `error_analysis`,
`improvement_suggestion`. The verdict is math-verify's answer check (via `grading`, the same checker
the evaluation uses); the error step is the first step of the path that disagrees with the problem's
reference trace.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass

import polars as pl

from mathse.artifacts import read_table, write_table
from mathse.grading import answers_match, extract_answer, normalize
from mathse.logs import Progress
from mathse.prompts import parse_steps

log = logging.getLogger(__name__)
JUDGE_NAME = "rule-orm-v1"


@dataclass(frozen=True)
class Verdict:
    status: str
    error_step: int | None
    error_analysis: str
    improvement_suggestion: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def find_error_step(steps: list[str], reference: list[str]) -> tuple[int, str]:
    """1-based index of the first step that departs from the reference trace, and why."""
    if not steps:
        return 1, "The response has no numbered reasoning steps."
    for i, ref in enumerate(reference):
        if i >= len(steps):
            return i + 1, f"The path stops after step {i}; step {i + 1} should establish: {ref}"
        if normalize(steps[i]) != normalize(ref):
            return i + 1, f"Step {i + 1} states '{steps[i]}', but it should be '{ref}'."
    if len(steps) > len(reference):
        return len(reference) + 1, f"Step {len(reference) + 1} goes beyond the solution and is not needed."
    return len(steps) + 1, "The steps are right but the stated final answer does not follow from them."


def judge_path(
    response: str, answer: str, reference_steps: list[str], precision: int | None = None
) -> tuple[str | None, bool, Verdict]:
    """Judge one path: (extracted answer, answer correct, verdict)."""
    extracted = extract_answer(response)
    correct = answers_match(extracted, answer, precision)
    if correct:
        return extracted, True, Verdict("CORRECT", None, "", "")
    if not reference_steps:
        analysis = (
            "The path gives no final answer."
            if extracted is None
            else f"The final answer {extracted} does not match the reference answer."
        )
        return (
            extracted,
            False,
            Verdict("WRONG", None, analysis, "Recheck the reasoning and the final answer."),
        )
    step, analysis = find_error_step(parse_steps(response), reference_steps)
    if extracted is None:
        analysis += " The path gives no final answer."
    suggestion = (
        f"Keep steps 1 to {step - 1} and redo the reasoning from step {step}."
        if step > 1
        else ("Read the values from the image again and redo the reasoning from step 1.")
    )
    return extracted, False, Verdict("WRONG", step, analysis, suggestion)


def judge_table(paths: pl.DataFrame, problems: pl.DataFrame) -> pl.DataFrame:
    """Judge every row of `paths` (problem_id, response, ...) against `problems`: the verdict columns."""
    ref = {
        r["problem_id"]: r
        for r in problems.select("problem_id", "answer", "precision", "solution_steps").iter_rows(named=True)
    }
    out = []
    bar = Progress(paths.height, "judge", "paths", log)
    for pid, response in paths.select("problem_id", "response").iter_rows():
        if pid not in ref:
            raise KeyError(f"path for unknown problem_id {pid!r}")
        p = ref[pid]
        extracted, correct, v = judge_path(response, p["answer"], p["solution_steps"] or [], p["precision"])
        out.append(
            {
                "extracted": extracted,
                "answer_correct": correct,
                "status": v.status,
                "error_step": v.error_step,
                "error_analysis": v.error_analysis,
                "improvement_suggestion": v.improvement_suggestion,
                "judge": JUDGE_NAME,
                "judgment_json": v.to_json(),
            }
        )
        bar.update()
    bar.close()
    schema = {
        "extracted": pl.String,
        "answer_correct": pl.Boolean,
        "status": pl.String,
        "error_step": pl.Int64,
        "error_analysis": pl.String,
        "improvement_suggestion": pl.String,
        "judge": pl.String,
        "judgment_json": pl.String,
    }
    return pl.DataFrame(out, schema=schema)


def run_judge(rollouts_path: str, problems_path: str, out_path: str) -> pl.DataFrame:
    """The judge rule: an ORM verdict for every sampled path of the round."""
    rollouts = read_table(rollouts_path, "rollout")
    problems = read_table(problems_path, "problem")
    verdicts = judge_table(rollouts, problems)
    judged = pl.concat([rollouts.drop("num_tokens", "finished", "temperature", "top_p"), verdicts], how="horizontal")
    n_correct = int(judged["answer_correct"].sum())
    log.info(
        "judged %d paths: %d CORRECT, %d WRONG (%d empty, %d without a final answer, %d hit max_new_tokens)",
        judged.height,
        n_correct,
        judged.height - n_correct,
        int((judged["response"].str.strip_chars() == "").sum()),
        int(judged["extracted"].is_null().sum()),
        int((~rollouts["finished"]).sum()),
    )
    return write_table(judged, out_path, "judgment")
