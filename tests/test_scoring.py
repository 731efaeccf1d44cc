"""Scoring by each benchmark's rules: literal response in, literal verdict out."""

import json

import polars as pl
import pytest

from mathse.judging.grading import choice_letter
from mathse.judging.scoring import breakdown, score_response, score_table
from mathse.judging.scoring.common import edit_distance, strip_units
from mathse.judging.scoring.mathvision import mathvision_clean


def problem(answer, atype="integer", choices=(), precision=None, **meta):
    return {
        "answer": answer,
        "answer_type": atype,
        "choices": list(choices),
        "precision": precision,
        "metadata": json.dumps(meta),
    }


MV_MC = dict(choices=["145°", "135°", "35°", "55°"], question_type="multi_choice", answer_type="text")
MV_FRAC = dict(choices=["3/11", "8/11", "6/11", "3/5"], question_type="multi_choice", answer_type="text")


def vista(answer, answer_type="integer", precision=None, **kw):
    if "choices" in kw:
        return problem(answer, "choice", kw.pop("choices"), precision, **kw)
    return problem(answer, answer_type, (), precision, question_type="free_form", answer_type=answer_type)


# (response, problem, correct, extracted, rule)
MATHVISTA = [
    ("145°", vista("145°", **MV_MC), True, "145°", "exact_choice"),
    ("B", vista("135°", **MV_MC), True, "B", "letter"),
    ("The answer is (B).", vista("135°", **MV_MC), True, "(B)", "answer_is"),
    ("The answer is (A) 145°.", vista("145°", **MV_MC), True, "(A) 145°", "answer_is"),
    ("The answer to this problem is C.", vista("35°", **MV_MC), True, "C", "answer_prefix"),
    ("The answer to this problem is 135.", vista("135°", **MV_MC), True, "135", "answer_prefix"),  # nearest choice
    ("The answer to this problem is E.", vista("35°", **MV_MC), True, "E", "answer_prefix"),  # nearest: '35°'
    ("The correct answer is (B) 8/11.", vista("8/11", **MV_FRAC), True, "(B) 8/11", "answer_is"),
    ("The answer is 6/11.", vista("8/11", **MV_FRAC), False, "6/11", "answer_is"),
    ("I think it is (D)", vista("3/5", **MV_FRAC), True, "D", "letter"),
    ("12", vista("12"), True, "12", "integer_response"),
    ("-3", vista("-3"), True, "-3", "integer_response"),
    ("The answer to this problem is 12.0.", vista("12"), True, "12.0", "answer_prefix"),
    ("The answer to this problem is 12 cm.", vista("12"), True, "12 cm", "answer_prefix"),
    ("The answer to this problem is 25%.", vista("25"), True, "25%", "answer_prefix"),
    ("The answer to this problem is 1,000.", vista("1000"), True, "1,000", "answer_prefix"),
    ("The answer to this problem is \\frac{6}{2}.", vista("3"), True, "\\frac{6}{2}", "answer_prefix"),
    ("so the total is 7 and then 9", vista("9"), True, "9", "last_number"),
    ("The answer to this problem is 13.", vista("12"), False, "13", "answer_prefix"),
    ("1.45", vista("1.45", "float", 2), True, "1.45", "float_response"),
    ("The answer to this problem is 1.449.", vista("1.45", "float", 2), True, "1.449", "answer_prefix"),
    ("The answer to this problem is 1.4.", vista("1.45", "float", 2), False, "1.4", "answer_prefix"),
    ("The answer to this problem is 0.5.", vista("0.5", "float", 1), True, "0.5", "answer_prefix"),
    ("The answer to this problem is 1/2.", vista("0.5", "float", 1), True, "1/2", "answer_prefix"),
    # Python's round(-2.25, 1) is -2.2, as in the official script.
    ("The answer to this problem is -2.25.", vista("-2.3", "float", 1), False, "-2.25", "answer_prefix"),
    ('The answer is "[2007, 2008]".', vista("[2007, 2008]", "list"), True, "[2007, 2008]", "quick_extract"),
    ("The answer to this problem is [2007,2008].", vista("[2007, 2008]", "list"), True, "[2007,2008]", "answer_prefix"),
    (
        "The answer to this problem is [2008, 2007].",
        vista("[2007, 2008]", "list"),
        False,
        "[2008, 2007]",
        "answer_prefix",
    ),
    ("The answer to this problem is Yes.", vista("Yes", "text"), True, "Yes", "answer_prefix"),
    ("", vista("12"), False, None, "empty"),
]


@pytest.mark.parametrize(("response", "prob", "correct", "extracted", "rule"), MATHVISTA)
def test_mathvista(response, prob, correct, extracted, rule):
    v = score_response("mathvista", response, prob)
    assert (v.correct, v.extracted, v.rule) == (correct, extracted, rule)


def test_mathvista_records_how_it_matched():
    assert score_response("mathvista", "The answer to this problem is E.", vista("35°", **MV_MC)).matched_by == (
        "nearest_choice"
    )
    assert score_response("mathvista", "B", vista("135°", **MV_MC)).matched_by == "letter"
    assert score_response("mathvista", "The answer to this problem is 25%.", vista("25")).matched_by == (
        "units_stripped"
    )
    frac = score_response("mathvista", "The answer to this problem is \\frac{6}{2}.", vista("3"))
    assert frac.matched_by == "math_verify"


MC5 = ["2", "4", "6", "8", "10"]


def mathv(answer, options=()):
    return problem(answer, "choice" if options else "integer", options, subject="metric geometry - angle", level=2)


MATHVISION = [
    ("So the answer is B.", mathv("B", MC5), True, "b", "letter_pattern"),
    ("(C)\nbecause ...", mathv("C", MC5), True, "c", "letter_pattern"),
    ("The answer is \\boxed{D}", mathv("D", MC5), True, "d", "boxed"),
    ("The answer is \\boxed{8}", mathv("D", MC5), True, "8", "boxed"),  # the option value
    ("The answer is (B) 4. Done", mathv("B", MC5), True, "b4", "answer_is"),  # named option -> letter
    ("The answer is E", mathv("B", MC5), False, "e", "answer_is"),
    ("The answer to this problem is C.", mathv("C", MC5), True, "c", "answer_prefix"),
    ("The area is 12.", mathv("12"), True, "12", "answer_is_number"),
    ("The answer is 12.004", mathv("12"), True, "12.004", "answer_is_number"),  # 2 decimals
    ("The answer is 12.01", mathv("12"), False, "12.01", "answer_is_number"),
    ("Thus \\boxed{x = \\frac{1}{2}}", mathv("0.5"), True, "\\frac{1}{2}", "boxed"),
    ("\\boxed{3} or rather \\boxed{4}", mathv("4"), True, "4", "boxed"),
    ("the final answer is 30^\\circ.\nExtra text", mathv("30"), True, "30", "answer_is"),
    ("The answer is 2\\sqrt{3}", mathv("2\\sqrt{3}"), True, "2\\sqrt{3}", "answer_is"),
    ("The answer is \\boxed{(1, 2)}", mathv("(1,2)"), True, "(1,2)", "boxed"),
    ("The answer is \\boxed{3,1,2}", mathv("1,2,3"), True, "3,1,2", "boxed"),
    ("The answer is -5", mathv("-5"), True, "-5", "answer_is_number"),
    ("The answer is 5", mathv("-5"), False, "5", "answer_is_number"),
    ("The answer is 50%", mathv("50"), True, "50", "answer_is"),
    ("I cannot tell.", mathv("7"), False, "icannottell", "whole_response"),
]


@pytest.mark.parametrize(("response", "prob", "correct", "extracted", "rule"), MATHVISION)
def test_mathvision(response, prob, correct, extracted, rule):
    v = score_response("mathvision", response, prob)
    assert (v.correct, v.extracted, v.rule) == (correct, extracted, rule)


def verse(answer, choices=(), answer_type=None, version="Text Dominant"):
    atype = answer_type or ("choice" if choices or answer in "ABCDE" else "integer")
    return problem(answer, atype, choices, problem_version=version)


VCH = ["30°", "40°", "50°", "60°"]
MATHVERSE = [
    ("The answer to this problem is B.", verse("B", VCH), True, "B", "answer_prefix"),
    ("The answer is (B) 40°.", verse("B", VCH), True, "(B) 40°", "answer_is"),
    ("The answer is 40°.", verse("B", VCH), True, "40°", "answer_is"),
    ("The answer is 40", verse("B", VCH), True, "40", "answer_is"),
    ("Answer: C", verse("B", VCH), False, "C", "answer_colon"),
    ("Thinking... (A) is wrong, so (D)", verse("D", VCH), True, "D", "letter"),
    ("The answer is A", verse("A", (), "choice", "Vision Only"), True, "A", "answer_is"),
    (
        "The answer to this problem is \\frac{3}{2}.",
        verse("1.5", answer_type="float"),
        True,
        "\\frac{3}{2}",
        "answer_prefix",
    ),
    ("\\boxed{2\\sqrt{3}}", verse("2\\sqrt{3}", answer_type="text"), True, "2\\sqrt{3}", "boxed"),
    ("The answer is \\sqrt{12}", verse("2\\sqrt{3}", answer_type="text"), True, "\\sqrt{12}", "answer_is"),
    ("The answer is 5 cm.", verse("5"), True, "5 cm", "answer_is"),
    ("The answer is -4.", verse("-4"), True, "-4", "answer_is"),
    ("The answer is 4.", verse("-4"), False, "4", "answer_is"),
    ("The sides are 3 and 4, total 7", verse("7"), True, "7", "last_number"),
    ("no idea", verse("7"), False, None, "none"),
]


@pytest.mark.parametrize(("response", "prob", "correct", "extracted", "rule"), MATHVERSE)
def test_mathverse(response, prob, correct, extracted, rule):
    v = score_response("mathverse", response, prob)
    assert (v.correct, v.extracted, v.rule) == (correct, extracted, rule)


GENERIC = [
    ("The answer to this problem is 8.", problem("8"), True, "8", "answer_prefix"),
    ("The answer to this problem is 0.5.", problem("\\frac{1}{2}", "text"), True, "0.5", "answer_prefix"),
    ("The answer to this problem is 3.14159.", problem("3.14", "float", precision=2), True, "3.14159", "answer_prefix"),
    ("The answer to this problem is [1, 2].", problem("[1,2]", "list"), True, "[1, 2]", "answer_prefix"),
    ("The answer to this problem is cat.", problem("Cat", "text"), True, "cat", "answer_prefix"),
    ("The answer to this problem is (A).", problem("A", "choice", ["x", "y"]), True, "(A)", "answer_prefix"),
    ("The answer to this problem is y.", problem("B", "choice", ["x", "y"]), True, "y", "answer_prefix"),
    ("The answer to this problem is C.", problem("A", "choice", ["x", "y"]), False, "C", "answer_prefix"),
]


@pytest.mark.parametrize(("response", "prob", "correct", "extracted", "rule"), GENERIC)
def test_generic(response, prob, correct, extracted, rule):
    v = score_response("generic", response, prob)
    assert (v.correct, v.extracted, v.rule) == (correct, extracted, rule)


def test_mathse_scoring_is_the_pipelines_own_rule():
    v = score_response("mathse", "Step 1: 3 + 5 = 8.\nThe answer to this problem is 8.", problem("8"))
    assert (v.correct, v.extracted, v.rule, v.matched_by) == (True, "8", "answer_prefix", "exact")
    assert score_response("mathse", "the total is 8", problem("8")).correct is False  # no fallback


@pytest.mark.parametrize(
    ("text", "choices", "letter"),
    [
        ("A", ["1", "2"], "A"),
        ("(B)", ["1", "2"], "B"),
        ("B.", ["1", "2"], "B"),
        ("(b)", ["1", "2"], "B"),
        ("Option B", ["1", "2"], "B"),
        ("(B) 2", ["1", "2"], "B"),
        ("2", ["1", "2"], "B"),
        ("C", ["1", "2"], None),
        ("a", ["1", "2"], None),  # a bare lower-case letter is a variable, not an option
        ("45^\\circ", ["30°", "45°"], "B"),
        ("\\frac{1}{2}", ["0.5", "2"], "A"),
    ],
)
def test_choice_letter(text, choices, letter):
    assert choice_letter(text, choices) == letter


@pytest.mark.parametrize(
    ("text", "number"),
    [("5 cm", "5"), ("25%", "25"), ("1,000 people", "1000"), ("30^\\circ", "30"), ("-2.5", "-2.5"), ("x+1", None)],
)
def test_strip_units(text, number):
    assert strip_units(text) == number


def test_mathvision_clean_and_edit_distance():
    assert mathvision_clean("\\boxed{\\dfrac{1}{2}}") == "\\frac{1}{2}"
    assert mathvision_clean("\\boxed{5 km}") == "5"
    assert mathvision_clean("x = 5") == "5"
    assert edit_distance("kitten", "sitting") == 3


def test_score_table_and_breakdown():
    problems = pl.DataFrame(
        {
            "problem_id": ["a", "b", "c"],
            "answer": ["1", "2", "3"],
            "answer_type": ["integer"] * 3,
            "choices": [[], [], []],
            "precision": [None, None, None],
            "metadata": [json.dumps({"problem_version": v}) for v in ["Text Lite", "Text Lite", "Vision Only"]],
        }
    )
    responses = ["The answer is 1.", "The answer is 5.", "The answer is 3."]
    scored = score_table(problems, responses, "mathverse")
    assert scored["correct"].to_list() == [True, False, True]
    table = breakdown(scored, problems, "mathverse")
    assert table.rows() == [("problem_version", "Text Lite", 2, 0.5), ("problem_version", "Vision Only", 1, 1.0)]


# An answer found by the LLM extractor goes through the suite's own normalisation and comparison.
EXTRACTED_CASES = [
    (
        "mathvista",
        {
            "answer": "15",
            "answer_type": "choice",
            "choices": ["12", "15"],
            "metadata": {"question_type": "multi_choice", "answer_type": "text"},
        },
        "B",
        True,
    ),
    (
        "mathvista",
        {
            "answer": "15",
            "answer_type": "choice",
            "choices": ["12", "15"],
            "metadata": {"question_type": "multi_choice", "answer_type": "text"},
        },
        "(A)",
        False,
    ),
    (
        "mathvista",
        {
            "answer": "1.5",
            "answer_type": "float",
            "precision": 1,
            "metadata": {"question_type": "free_form", "answer_type": "float"},
        },
        "1.50",
        True,
    ),
    ("mathvision", {"answer": "B", "answer_type": "choice", "choices": ["3", "8/11"]}, "B", True),
    ("mathvision", {"answer": "2.5", "answer_type": "float"}, "2.50", True),
    ("mathverse", {"answer": "C", "answer_type": "choice", "choices": ["1", "2", "3"]}, "C", True),
    ("generic", {"answer": "0.5", "answer_type": "float"}, "\\frac{1}{2}", True),
    ("generic", {"answer": "-3", "answer_type": "integer"}, "3", False),
    ("mathse", {"answer": "8", "answer_type": "integer"}, "8", True),
]


@pytest.mark.parametrize("scoring, problem, extracted, correct", EXTRACTED_CASES)
def test_extracted_answers_are_scored_by_the_suites_rules(scoring, problem, extracted, correct):
    from mathse.judging.scoring import score_extracted

    v = score_extracted(scoring, extracted, {"choices": [], "precision": None, "metadata": {}, **problem})
    assert (v.correct, v.rule, v.extracted) == (correct, "llm_extractor", extracted)


def test_the_extractor_is_used_only_where_no_rule_answers():
    from mathse.judging.scoring import score_table

    asked = []

    def extractor(items):
        asked.extend(response for _, response in items)
        return ["7", None]

    extractor.name = "stub@v1"
    problems = pl.DataFrame(
        {"problem_id": ["a", "b", "c"], "answer": ["7", "7", "7"], "answer_type": ["integer"] * 3,
         "choices": [[], [], []], "precision": [None, None, None], "metadata": ["{}"] * 3}
    )  # fmt: skip
    responses = ["The answer is 7.", "seven, I believe", "no idea"]
    scores = score_table(problems, responses, "generic", extractor)
    assert asked == ["seven, I believe", "no idea"]
    assert scores["rule"].to_list() == ["answer_is", "llm_extractor", "none"]
    assert scores["correct"].to_list() == [True, True, False]
    assert scores["extractor"].to_list() == [None, "stub@v1", None]
