"""The rule ORM: verdicts in the paper's JSON fields and the first wrong step."""

import json

import polars as pl
import pytest

from mathse.judging.orm.rule import find_error_step, judge_path, judge_table
from mathse.prompts import format_solution

REF = ["The left bar is 3.", "The right bar is 5.", "3 + 5 = 8."]


def test_correct_path_is_correct_with_no_error_step():
    extracted, ok, v = judge_path(format_solution(REF, "8"), "8", REF)
    assert (extracted, ok, v.status, v.error_step) == ("8", True, "CORRECT", None)


def test_misread_value_is_the_error_step():
    path = format_solution(["The left bar is 3.", "The right bar is 6.", "3 + 6 = 9."], "9")
    extracted, ok, v = judge_path(path, "8", REF)
    assert (extracted, ok, v.status, v.error_step) == ("9", False, "WRONG", 2)
    assert "The right bar is 6." in v.error_analysis
    # The reference step (and so the reference answer) is never stated: the paper's ORM must not give it away.
    assert "5" not in v.error_analysis and "8" not in v.error_analysis + v.improvement_suggestion
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
from mathse.judging.orm import judge_stats  # noqa: E402
from mathse.judging.orm.verdict import Verdict, VerdictParseError, parse_verdict, verdict_row  # noqa: E402


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


# The column-wise judge against the per-row reference, on a varied sample.
from mathse.judging import grading  # noqa: E402
from mathse.judging.grading import answers_match, extract_answer  # noqa: E402
from mathse.judging.orm.rule import judge_table_per_row  # noqa: E402

# (answer, precision): integers, decimals at precision, fractions, percentages, negatives, text, LaTeX.
ANSWERS = [
    ("8", None),
    ("1234", None),
    ("-3", None),
    ("0.5", 1),
    ("3.14", 2),
    ("0.13", 2),
    ("2.68", 2),
    ("\\frac{1}{2}", None),
    ("25%", None),
    ("\\sqrt{2}", None),
    ("x + 1", None),
    ("(1, 2)", None),
    ("B", None),
    ("12", 0),
]
FINALS = [
    "{a}",
    "${a}$",
    "{a}.",
    " {a} .",
    "\\boxed{{{a}}}",
    "\\text{{{a}}}",
    "{a}%",
    "-{a}",
    "+{a}",
    "{a}.0",
    "1/2",
    "\\frac12",
    "\\frac{{1}}{{2}}",
    "0.50",
    "50%",
    ".5",
    "5.",
    "0.125",
    "0.135",
    "2.675",
    "3.145",
    "3.1415",
    "1,234",
    "1,234.0",
    "12,34",
    "−3",
    "-3.0",
    "٣",
    "1e3",
    "8 apples",
    "x+1",
    "1+x",
    "(1,2)",
    "b",
    "B.",
    "\\sqrt{{2}}",
    "2^{{1/2}}",
    "1.41421356",
    "inf",
    "nan",
    "",
    "   ",
    "8\u00a0",
    "8\u2003",
    "\u00bd",
    "ΣΑΣ",
    "{a}\x1c",
    "12.5",
    "11.5",
    "-0",
    "1e400",
    "0.1e1",
]


def _response(rng, answer, steps):
    final = rng.choice(FINALS).format(a=answer)
    body = [f"Step {i + 1}: {s}" for i, s in enumerate(steps)]
    if rng.random() < 0.3 and body:  # a wrong step
        body[rng.integers(len(body))] = "Step 2: The right bar is 6."
    if rng.random() < 0.1:
        body = body[: rng.integers(len(body) + 1)]
    kind = rng.integers(10)
    if kind == 0:
        return ""
    if kind == 1:
        return "\n".join(body)  # no answer
    if kind == 2:
        return "\n".join(body + [f"\\boxed{{{final}}}"])
    if kind == 3:  # several answer lines: the last counts
        return "\n".join(body + ["The answer to this problem is 7.", f"the ANSWER to this problem is: {final}"])
    if kind == 4:
        return "word " * int(rng.integers(200, 800)) + "\n".join(body + [f"The answer to this problem is {final}."])
    if kind == 5:
        return "\r\n".join(body + [f"The answer to this problem is\n{final}"])
    if kind == 6:
        return "\n".join(["  step 1 : " + steps[0] if steps else "", "Step 3.", *body, f"$\\boxed{{{final}}}$"])
    if kind == 7:  # one step more than the reference
        return "\n".join(body + [f"Step {len(body) + 1}: Check it again.", f"The answer to this problem is {final}."])
    return "\n".join(body + [f"The answer to this problem is {final}."])


def varied_sample(n=600, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    problems = pl.DataFrame(
        {
            "problem_id": [f"p{i}" for i in range(len(ANSWERS))],
            "answer": [a for a, _ in ANSWERS],
            "precision": [p for _, p in ANSWERS],
            "solution_steps": [[] if i % 5 == 4 else REF for i in range(len(ANSWERS))],
        },
        schema_overrides={"precision": pl.Int64},
    )
    pids, responses = [], []
    for _ in range(n):
        i = int(rng.integers(len(ANSWERS)))
        pids.append(f"p{i}")
        responses.append(_response(rng, ANSWERS[i][0], REF))
    return pl.DataFrame({"problem_id": pids, "response": responses}), problems


def test_column_wise_judge_equals_the_per_row_reference_on_every_row(tmp_path, monkeypatch):
    paths, problems = varied_sample()
    calls = []
    real = grading.answers_match
    monkeypatch.setattr(grading, "answers_match", lambda *a: calls.append(a) or real(*a))
    fast = judge_table(paths, problems)
    monkeypatch.undo()
    slow = judge_table_per_row(paths, problems)
    for i, (f, s) in enumerate(zip(fast.iter_rows(named=True), slow.iter_rows(named=True), strict=True)):
        assert f == s, (i, paths.row(i))
    # the fast path settles most rows; only distinct unsettled pairs reach math-verify
    assert 0 < len(calls) == len(set(calls)) < paths.height / 3
    assert fast["answer_correct"].sum() > 50 and (~fast["answer_correct"]).sum() > 50
    fast.write_parquet(tmp_path / "fast.parquet")
    slow.write_parquet(tmp_path / "slow.parquet")
    assert (tmp_path / "fast.parquet").read_bytes() == (tmp_path / "slow.parquet").read_bytes()


def test_judge_answer_correct_is_math_verify_on_every_row():
    paths, problems = varied_sample(seed=1)
    out = judge_table(paths, problems)
    ref = {p: (a, prec) for p, a, prec in problems.select("problem_id", "answer", "precision").iter_rows()}
    expected = [answers_match(extract_answer(r), *ref[p]) for p, r in paths.iter_rows()]
    assert out["answer_correct"].to_list() == expected
    assert out["extracted"].to_list() == [extract_answer(r) for r in paths["response"]]


def test_unknown_problem_id_is_an_error():
    paths = pl.DataFrame({"problem_id": ["zz"], "response": ["The answer to this problem is 8."]})
    with pytest.raises(KeyError, match="zz"):
        judge_table(paths, varied_sample(n=1)[1])


def test_multiple_choice_answers_count_by_letter_or_by_option_text():
    """Pool problems from benchmark files keep their options: 'B', '(B)' and B's text all name option B."""
    problems = pl.DataFrame(
        {
            "problem_id": ["text", "letter"],
            "answer": ["30°", "B"],  # MathVista stores the option's text, MATH-Vision and MathVerse its letter
            "precision": [None, None],
            "solution_steps": [[], []],
            "choices": [["60°", "30°", "45°"], ["1/2", "8/11", "3"]],
        },
        schema_overrides={"precision": pl.Int64, "solution_steps": pl.List(pl.String)},
    )
    answers = {"text": ["B", "(B)", "30°", "A", "45°"], "letter": ["B", "8/11", "(B) 8/11", "C", "3"]}
    paths = pl.DataFrame(
        [
            {"problem_id": pid, "response": f"Step 1: Read the figure.\nThe answer to this problem is {a}."}
            for pid, given in answers.items()
            for a in given
        ]
    )
    fast, slow = judge_table(paths, problems), judge_table_per_row(paths, problems)
    assert fast.equals(slow)
    assert fast["answer_correct"].to_list() == [True, True, True, False, False] * 2
    # Without its options a letter is only text.
    assert not judge_table(paths.head(1), problems.drop("choices"))["answer_correct"][0]
