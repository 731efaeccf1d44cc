"""The rule ORM: verdicts in the paper's JSON fields and the first wrong step."""

import json

import polars as pl
import pytest

from mathse.orm import find_error_step, judge_path, judge_table
from mathse.prompts import format_solution

REF = ["The left bar is 3.", "The right bar is 5.", "3 + 5 = 8."]


def test_correct_path_is_correct_with_no_error_step():
    extracted, ok, v = judge_path(format_solution(REF, "8"), "8", REF)
    assert (extracted, ok, v.status, v.error_step) == ("8", True, "CORRECT", None)


def test_misread_value_is_the_error_step():
    path = format_solution(["The left bar is 3.", "The right bar is 6.", "3 + 6 = 9."], "9")
    extracted, ok, v = judge_path(path, "8", REF)
    assert (extracted, ok, v.status, v.error_step) == ("9", False, "WRONG", 2)
    assert "The right bar is 6." in v.error_analysis and "The right bar is 5." in v.error_analysis
    assert v.improvement_suggestion.startswith("Keep steps 1 to 1")
    assert set(json.loads(v.to_json())) == {
        "status",
        "error_step",
        "error_analysis",
        "improvement_suggestion",
    }


def test_arithmetic_slip_in_last_step():
    assert find_error_step(["The left bar is 3.", "The right bar is 5.", "3 + 5 = 9."], REF)[0] == 3


def test_truncated_path_without_answer():
    extracted, ok, v = judge_path("Step 1: The left bar is 3.\nStep 2: The right", "8", REF)
    assert extracted is None and not ok and v.error_step == 2
    assert "no final answer" in v.error_analysis


def test_no_steps_at_all():
    assert find_error_step([], REF) == (1, "The response has no numbered reasoning steps.")


def test_right_steps_wrong_final_answer():
    _, ok, v = judge_path(format_solution(REF, "9"), "8", REF)
    assert not ok and v.error_step == 4


def test_right_answer_counts_even_with_different_steps():
    # The verdict is the answer check (as the paper's ORM judges against the reference answer).
    _, ok, v = judge_path("Step 1: 4 + 4 = 8.\nThe answer to this problem is 8.", "8", REF)
    assert ok and v.status == "CORRECT"


def test_without_reference_trace_no_step_is_claimed():
    _, ok, v = judge_path("The answer to this problem is 2.", "3", [])
    assert not ok and v.error_step is None and "does not match" in v.error_analysis


def test_judge_table_keeps_row_order():
    problems = pl.DataFrame(
        {
            "problem_id": ["a", "b"],
            "answer": ["8", "2"],
            "precision": [None, None],
            "solution_steps": [REF, []],
        }
    )
    paths = pl.DataFrame({"problem_id": ["b", "a", "a"], "response": ["x", format_solution(REF, "8"), "y"]})
    out = judge_table(paths, problems)
    assert out["status"].to_list() == ["WRONG", "CORRECT", "WRONG"]
    assert out["error_step"].to_list() == [None, None, 1]


# The model ORM's output parsing: literal in, literal out.
from mathse.orm import Verdict, VerdictParseError, judge_stats, parse_verdict, verdict_row  # noqa: E402


def test_parse_verdict_reads_the_papers_json():
    raw = '{"status": "WRONG", "error_step": 2, "error_analysis": "5 misread as 6", "improvement_suggestion": "reread"}'
    assert parse_verdict(raw) == Verdict("WRONG", 2, "5 misread as 6", "reread")


def test_parse_verdict_allows_fences_prose_and_loose_values():
    raw = 'Here is my verdict:\n```json\n{"status": "correct", "error_step": null}\n```\nThanks.'
    assert parse_verdict(raw) == Verdict("CORRECT", None, "", "")
    assert parse_verdict('Verdict: {"status": "WRONG", "error_step": "3"} done').error_step == 3
    # A CORRECT verdict never carries an error step.
    assert parse_verdict('{"status": "CORRECT", "error_step": 2}').error_step is None


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ('{"status": "WRONG", "error_step": 2, "error_analysis": "the sum is', "truncated"),
        ("The path looks correct to me.", "no JSON object"),
        ('{"status": "PROBABLY", "error_step": 1}', "status must be CORRECT or WRONG"),
        ('{"error_step": 1}', "status must be CORRECT or WRONG"),
        ('{"status": "WRONG", "error_step": "two"}', "error_step must be"),
        ('{"status": "WRONG", "error_step": 0}', "error_step must be"),
        ('["CORRECT"]', "no JSON object"),
        ("", "no JSON object"),
    ],
)
def test_unparsable_verdicts_are_errors_not_correct(raw, reason):
    with pytest.raises(VerdictParseError, match=reason):
        parse_verdict(raw)
    row = verdict_row(raw, "8", True, "m")
    assert row["status"] == "INVALID" and row["judgment_json"] == raw and reason in row["error_analysis"]


def test_judge_stats_counts_invalid_as_disagreement():
    judged = pl.DataFrame(
        {
            "judge": ["m"] * 4,
            "status": ["CORRECT", "WRONG", "INVALID", "CORRECT"],
            "answer_correct": [True, False, True, False],
        }
    )
    s = judge_stats(judged, 3).row(0, named=True)
    assert (s["round"], s["n"], s["n_correct"], s["n_wrong"], s["n_invalid"], s["n_answer_correct"]) == (
        3,
        4,
        2,
        1,
        1,
        2,
    )
    assert s["agreement"] == 0.5
