"""The rule ORM: verdicts in the paper's JSON fields and the first wrong step."""

import json

import polars as pl

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
