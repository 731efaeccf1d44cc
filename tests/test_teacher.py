"""The programmatic teacher: distillation with a slip rate, reflections guided (or not) by the ORM."""

import numpy as np
import polars as pl

from mathse.artifacts import read_table, write_table
from mathse.config import ReflectionConfig, TeacherConfig
from mathse.judging.orm.rule import judge_path
from mathse.judging.teacher import distill, reflect, rewrite
from mathse.prompts import format_solution

REF = ["The width is 3.", "The height is 4.", "3 + 4 = 7.", "2 x 7 = 14."]


def test_distill_solves_every_seed_problem_and_the_orm_rejects_slips(data_dir, tmp_path):
    out = distill(str(data_dir / "seed.parquet"), str(tmp_path / "d.parquet"), TeacherConfig(error_rate=0.5), seed=0)
    seed = read_table(data_dir / "seed.parquet", "problem")
    assert out["problem_id"].to_list() == seed["problem_id"].to_list()
    assert 0 < (out["status"] == "WRONG").sum() < out.height
    for row, prob in zip(out.iter_rows(named=True), seed.iter_rows(named=True), strict=True):
        _, ok, _ = judge_path(row["response"], prob["answer"], prob["solution_steps"])
        assert ok == (row["status"] == "CORRECT")
    perfect = distill(str(data_dir / "seed.parquet"), str(tmp_path / "p.parquet"), TeacherConfig(error_rate=0), seed=0)
    assert (perfect["status"] == "CORRECT").all()


def test_rewrite_keeps_the_steps_before_the_error():
    wrong = format_solution(["The width is 3.", "The height is 9.", "3 + 9 = 12.", "2 x 12 = 24."], "24")
    fixed = rewrite(wrong, REF, "14", error_step=2, rng=np.random.default_rng(0), error_rate=0)
    assert fixed == format_solution(REF, "14")


def test_without_feedback_a_late_guess_keeps_the_mistake():
    wrong = format_solution(["The width is 5.", "The height is 4.", "5 + 4 = 9.", "2 x 9 = 18."], "18")
    outcomes = {
        judge_path(rewrite(wrong, REF, "14", None, np.random.default_rng(i), 0), "14", REF)[1] for i in range(40)
    }
    assert outcomes == {True, False}


def _judgments(path, rows):
    base = {
        "extracted": None,
        "answer_correct": False,
        "error_analysis": "",
        "improvement_suggestion": "",
        "judge": "rule",
        "judgment_json": "{}",
        "model": "m",
        "backend": "hf",
        "prompt_version": "v1",
        "seed": 0,
    }
    write_table(pl.DataFrame([{**base, **r} for r in rows]), path, "judgment")


def test_reflect_rewrites_only_unsolved_problems_and_rechecks(data_dir, tmp_path):
    pool = read_table(data_dir / "pool.parquet", "problem")
    a, b = pool["problem_id"][0], pool["problem_id"][1]
    _judgments(
        tmp_path / "j.parquet",
        [
            {
                "problem_id": a,
                "sample_idx": 0,
                "response": "Step 1: nonsense",
                "status": "WRONG",
                "error_step": 1,
                "round": 1,
            },
            {
                "problem_id": a,
                "sample_idx": 1,
                "response": "nope",
                "status": "WRONG",
                "error_step": 1,
                "round": 1,
            },
            {
                "problem_id": b,
                "sample_idx": 0,
                "response": "x",
                "status": "WRONG",
                "error_step": 1,
                "round": 1,
            },
            {
                "problem_id": b,
                "sample_idx": 1,
                "response": "y",
                "status": "CORRECT",
                "error_step": None,
                "round": 1,
            },
        ],
    )
    out = reflect(
        [str(tmp_path / "j.parquet")],
        [str(data_dir / "seed.parquet"), str(data_dir / "pool.parquet")],
        str(tmp_path / "r.parquet"),
        TeacherConfig(error_rate=0),
        ReflectionConfig(),
        round_idx=1,
        seed=0,
    )
    assert out["problem_id"].to_list() == [a] and out["sample_idx"].to_list() == [0]
    assert out["accepted"].to_list() == [True] and out["status"].to_list() == ["CORRECT"]


def test_reflection_prompt_carries_the_orm_feedback_and_the_caveat():
    from mathse.prompts import reflect_prompt

    p = reflect_prompt("What is 3 + 5?", "Step 1: 3 + 5 = 9.", 1, "3 + 5 is 8, not 9.", "v1")
    assert "What is 3 + 5?" in p and "Step 1: 3 + 5 = 9." in p
    assert "first error is in step 1: 3 + 5 is 8, not 9." in p
    assert "may be questionable" in p and "surely wrong" in p
    blind = reflect_prompt("What is 3 + 5?", "Step 1: 3 + 5 = 9.", 1, "3 + 5 is 8, not 9.", "v1", feedback=False)
    assert "3 + 5 is 8, not 9." not in blind and "surely wrong" in blind


def _one_wrong_path(data_dir, tmp_path):
    """A pool problem's reference solution with its first step misread: a wrong path with a known error."""
    from mathse.prompts import format_solution

    p = read_table(data_dir / "pool.parquet", "problem").row(0, named=True)
    steps = list(p["solution_steps"])
    steps[0] = steps[0].rstrip(".") + "0."  # a misread value
    _judgments(
        tmp_path / "j.parquet",
        [
            {
                "problem_id": p["problem_id"],
                "sample_idx": 0,
                "response": format_solution(steps, "1000"),
                "status": "WRONG",
                "error_step": 1,
                "round": 1,
            }
        ],
    )
    return p


def test_teacher_feedback_locates_the_error_itself(data_dir, tmp_path):
    from mathse.prompts import parse_steps

    """reflection.feedback: teacher - the ORM's step is not used (here it is wrong on purpose: step 3); the
    programmatic teacher finds step 1 from its own trace and its rewrite is right."""
    p = _one_wrong_path(data_dir, tmp_path)
    j = read_table(tmp_path / "j.parquet", "judgment").with_columns(error_step=pl.lit(3, pl.Int64))
    write_table(j, tmp_path / "j.parquet", "judgment")
    kw = dict(round_idx=1, seed=0)
    files = [str(data_dir / "seed.parquet"), str(data_dir / "pool.parquet")]
    teacher = reflect(
        [str(tmp_path / "j.parquet")],
        files,
        str(tmp_path / "t.parquet"),
        TeacherConfig(error_rate=0),
        ReflectionConfig(feedback="teacher"),
        **kw,
    )
    assert teacher["feedback"].to_list() == ["teacher"] and teacher["accepted"].to_list() == [True]
    assert parse_steps(teacher["response"][0])[0] == p["solution_steps"][0]  # redone from step 1
    # Told step 3 (the ORM's feedback here), the teacher keeps the misread step 1.
    orm = reflect(
        [str(tmp_path / "j.parquet")],
        files,
        str(tmp_path / "o.parquet"),
        TeacherConfig(error_rate=0),
        ReflectionConfig(feedback="orm"),
        **kw,
    )
    assert parse_steps(orm["response"][0])[0] != p["solution_steps"][0]


def test_reflections_are_rechecked_by_the_configured_model_judge(data_dir, tiny_model_dir, tmp_path):
    """orm.backend: model - the model ORM's verdict decides `accepted` (the untrained tiny model answers no
    JSON, so INVALID); math-verify's check is recorded beside it and says the rewrite is right."""
    from mathse.config import OrmConfig

    _one_wrong_path(data_dir, tmp_path)
    out = reflect(
        [str(tmp_path / "j.parquet")],
        [str(data_dir / "seed.parquet"), str(data_dir / "pool.parquet")],
        str(tmp_path / "r.parquet"),
        TeacherConfig(error_rate=0),
        ReflectionConfig(),
        round_idx=1,
        seed=0,
        orm=OrmConfig(backend="model", max_new_tokens=8),
        backbone=str(tiny_model_dir),
    )
    assert out["answer_correct"].to_list() == [True]
    assert out["judge"][0].startswith("orm (hf:") and out["judge"][0] != "rule"
    assert out["status"].to_list() == ["INVALID"] and out["accepted"].to_list() == [False]


def test_teacher_critique_reply_is_parsed_or_left_unlocated():
    from mathse.prompts import critique_prompt, parse_critique

    prompt = critique_prompt("What is 3 + 5?", "Step 1: 3 + 5 = 9.", "v1")
    assert "Step 1: 3 + 5 = 9." in prompt and "surely wrong" in prompt and "error_step" in prompt
    assert parse_critique('```json\n{"error_step": 2, "error_analysis": "2 + 2 is not 5"}\n```') == (
        2,
        "2 + 2 is not 5",
    )
    assert parse_critique("no idea") == (None, None)
    assert parse_critique('{"error_step": "two", "error_analysis": ""}') == (None, None)
