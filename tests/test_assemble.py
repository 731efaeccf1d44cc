"""Assembly: the training set grows cumulatively and solved problems leave the pool."""

import polars as pl

from mathse.artifacts import read_table, write_table
from mathse.config import AssembleConfig
from mathse.training.assemble import assemble_round, assemble_round0


def _row(pid, sample_idx, response, status, round_=1):
    return {
        "problem_id": pid,
        "sample_idx": sample_idx,
        "response": response,
        "extracted": None,
        "answer_correct": status == "CORRECT",
        "status": status,
        "error_step": None,
        "error_analysis": "",
        "improvement_suggestion": "",
        "judge": "rule",
        "judgment_json": "{}",
        "round": round_,
        "model": "m",
        "backend": "hf",
        "prompt_version": "v1",
        "seed": 0,
    }


def test_round0_keeps_correct_distillations_and_returns_failures_to_the_pool(data_dir, tmp_path):
    seed = read_table(data_dir / "seed.parquet", "problem")
    distilled = pl.DataFrame(
        {
            "problem_id": seed["problem_id"],
            "response": ["r"] * seed.height,
            "status": ["WRONG"] + ["CORRECT"] * (seed.height - 1),
            "round": 0,
            "model": "teacher",
            "backend": "programmatic",
            "prompt_version": "v1",
            "seed": 0,
        }
    )
    write_table(distilled, tmp_path / "d.parquet", "distilled")
    assemble_round0(
        str(tmp_path / "d.parquet"),
        str(data_dir / "seed.parquet"),
        str(data_dir / "pool.parquet"),
        str(tmp_path / "train.parquet"),
        str(tmp_path / "remain.parquet"),
    )
    train = read_table(tmp_path / "train.parquet", "train")
    remain = read_table(tmp_path / "remain.parquet", "problem")
    pool = read_table(data_dir / "pool.parquet", "problem")
    assert train.height == seed.height - 1 and set(train["origin"]) == {"distill"}
    assert train["question"].to_list() == seed["question"].to_list()[1:]
    assert set(remain["problem_id"]) == set(pool["problem_id"]) | {seed["problem_id"][0]}


def test_round_adds_distinct_correct_paths_and_accepted_reflections(data_dir, tmp_path):
    pool = read_table(data_dir / "pool.parquet", "problem")
    write_table(pool, tmp_path / "remain0.parquet", "problem")
    prev = pl.DataFrame(
        {
            "problem_id": ["seed-x"],
            "question": ["q"],
            "images": [["i.png"]],
            "response": ["r"],
            "origin": ["distill"],
            "round_added": [0],
            "sample_idx": [0],
            "model": ["t"],
            "backend": ["programmatic"],
            "prompt_version": ["v1"],
        }
    )
    write_table(prev, tmp_path / "train0.parquet", "train")
    a, b, c = pool["problem_id"][:3]
    write_table(
        pl.DataFrame(
            [
                _row(a, 0, "same", "CORRECT"),
                _row(a, 1, "same", "CORRECT"),
                _row(a, 2, "other", "CORRECT"),
                _row(b, 0, "bad", "WRONG"),
                _row(c, 0, "bad", "WRONG"),
            ]
        ),
        tmp_path / "j.parquet",
        "judgment",
    )
    refl = pl.DataFrame(
        {
            "problem_id": [b, c],
            "sample_idx": [0, 0],
            "source_round": [1, 1],
            "wrong_response": ["bad", "bad"],
            "error_step": [1, 1],
            "feedback": ["orm", "orm"],
            "response": ["fixed", "still bad"],
            "status": ["CORRECT", "WRONG"],
            "judge": ["rule", "rule"],
            "answer_correct": [True, False],
            "accepted": [True, False],
            "round": [1, 1],
            "model": ["t", "t"],
            "backend": ["programmatic"] * 2,
            "prompt_version": ["v1"] * 2,
            "seed": [0, 0],
        }
    )
    write_table(refl, tmp_path / "r.parquet", "reflection")
    problems = [str(data_dir / "seed.parquet"), str(data_dir / "pool.parquet")]
    for k, expected_self in [(1, ["same"]), (2, ["same", "other"])]:
        assemble_round(
            str(tmp_path / "train0.parquet"),
            str(tmp_path / "remain0.parquet"),
            str(tmp_path / "j.parquet"),
            [str(tmp_path / "r.parquet")],
            problems,
            str(tmp_path / "t.parquet"),
            str(tmp_path / "rem.parquet"),
            AssembleConfig(max_correct_per_problem=k),
            round_idx=1,
        )
        train = read_table(tmp_path / "t.parquet", "train")
        assert train.head(1).equals(prev)
        assert train.filter(pl.col("origin") == "self")["response"].to_list() == expected_self
        assert train.filter(pl.col("origin") == "reflect")["response"].to_list() == ["fixed"]
        remain = read_table(tmp_path / "rem.parquet", "problem")
        assert a not in set(remain["problem_id"]) and {b, c} <= set(remain["problem_id"])
        assert remain.height == pool.height - 1

    # Unverified self-training (a control): every sampled problem adds its first path whatever the verdict,
    # and leaves the pool; a final reflection stage (no judgments) adds only the accepted reflections.
    assemble_round(
        str(tmp_path / "train0.parquet"),
        str(tmp_path / "remain0.parquet"),
        str(tmp_path / "j.parquet"),
        [],
        problems,
        str(tmp_path / "t.parquet"),
        str(tmp_path / "rem.parquet"),
        AssembleConfig(verified=False),
        round_idx=1,
    )
    train = read_table(tmp_path / "t.parquet", "train")
    assert train.filter(pl.col("origin") == "self")["response"].to_list() == ["same", "bad", "bad"]
    assert read_table(tmp_path / "rem.parquet", "problem").height == pool.height - 3
    assemble_round(
        str(tmp_path / "train0.parquet"),
        str(tmp_path / "remain0.parquet"),
        None,
        [str(tmp_path / "r.parquet")],
        problems,
        str(tmp_path / "t.parquet"),
        str(tmp_path / "rem.parquet"),
        AssembleConfig(),
        round_idx=3,
    )
    train = read_table(tmp_path / "t.parquet", "train")
    assert train["origin"].to_list() == ["distill", "reflect"] and train["response"][1] == "fixed"
    assert read_table(tmp_path / "rem.parquet", "problem").height == pool.height


def test_round0_with_the_teacher_solving_the_pool_too(data_dir, tmp_path):
    """teacher.distill_pool (the paper's 'teacher only'): solved pool problems are trained on and leave it."""
    seed = read_table(data_dir / "seed.parquet", "problem")
    pool = read_table(data_dir / "pool.parquet", "problem")
    ids = seed["problem_id"].to_list() + pool["problem_id"].to_list()
    status = ["CORRECT"] * len(ids)
    status[len(seed)] = "WRONG"  # the teacher's slip on the first pool problem
    distilled = pl.DataFrame(
        {
            "problem_id": ids,
            "response": ["r"] * len(ids),
            "status": status,
            "round": 0,
            "model": "teacher",
            "backend": "programmatic",
            "prompt_version": "v1",
            "seed": 0,
        }
    )
    write_table(distilled, tmp_path / "d.parquet", "distilled")
    assemble_round0(
        str(tmp_path / "d.parquet"),
        str(data_dir / "seed.parquet"),
        str(data_dir / "pool.parquet"),
        str(tmp_path / "train.parquet"),
        str(tmp_path / "remain.parquet"),
    )
    train = read_table(tmp_path / "train.parquet", "train")
    assert train.height == len(ids) - 1 and train["question"].null_count() == 0
    assert read_table(tmp_path / "remain.parquet", "problem")["problem_id"].to_list() == [pool["problem_id"][0]]
