"""ORM training data, the paper's ORM metrics, and the ORM rules in the DAG."""

from __future__ import annotations

import json

import polars as pl
import pytest
from test_workflow import planned_jobs, snakemake, write_config

from mathse.artifacts import read_table
from mathse.config import OrmConfig
from mathse.orm import judge_path
from mathse.orm_train import build_orm_data, orm_examples, orm_metrics, orm_table


def test_orm_examples_are_labelled_by_the_programmatic_teacher(data_dir):
    problems = pl.concat([read_table(data_dir / f"{s}.parquet", "problem") for s in ("seed", "pool")])
    ex, bad = orm_examples(problems, correct_fraction=0.5, seed=0, stream=0)
    assert ex.height == problems.height and bad.is_empty()
    assert 0 < (ex["status"] == "CORRECT").sum() < ex.height
    ref = {r["problem_id"]: r for r in problems.iter_rows(named=True)}
    for r in ex.iter_rows(named=True):
        _, ok, v = judge_path(r["response"], r["answer"], ref[r["problem_id"]]["solution_steps"])
        assert (r["status"], r["error_step"]) == (v.status, v.error_step) and ok == (v.status == "CORRECT")
        assert list(json.loads(r["judgment_json"])) == [
            "status",
            "error_step",
            "error_analysis",
            "improvement_suggestion",
        ]
    wrong = ex.filter(pl.col("status") == "WRONG")
    assert wrong["error_step"].is_not_null().all() and wrong["error_step"].n_unique() > 1
    assert orm_examples(problems, 1.0, 0, 0)[0]["status"].unique().to_list() == ["CORRECT"]


def test_orm_data_trains_on_seed_and_pool_and_holds_out_the_suite(data_dir, tmp_path):
    cfg = OrmConfig(prompt_version="brief")
    build_orm_data(
        [str(data_dir / "seed.parquet"), str(data_dir / "pool.parquet")],
        [str(data_dir / "bench/synthetic.parquet")],
        str(tmp_path / "t.parquet"),
        str(tmp_path / "e.parquet"),
        cfg,
        seed=0,
    )
    train = read_table(tmp_path / "t.parquet", "train")
    held = read_table(tmp_path / "e.parquet", "orm_example")
    assert train.height == 21 and held.height == 6
    assert train["question"].str.contains("Reference answer: ").all() and set(train["origin"]) == {"orm"}
    assert (
        train["response"]
        .map_elements(lambda s: json.loads(s)["status"], return_dtype=pl.String)
        .is_in(["CORRECT", "WRONG"])
        .all()
    )
    assert not set(held["problem_id"]) & {p.removesuffix("#orm") for p in train["problem_id"]}


def test_orm_metrics_as_the_paper_reports_them():
    out = pl.DataFrame(
        {
            "label_status": ["CORRECT", "CORRECT", "WRONG", "WRONG", "WRONG", "WRONG"],
            "label_step": [None, None, 2, 3, 1, 2],
            "pred_status": ["CORRECT", "INVALID", "WRONG", "WRONG", "CORRECT", "WRONG"],
            "pred_step": [None, None, 2, 1, None, 2],
        },
        schema_overrides={"label_step": pl.Int64, "pred_step": pl.Int64},
    )
    m = orm_metrics(out)
    assert (m["acc_correct"], m["acc_wrong"], m["acc_overall"]) == (0.5, 0.75, 4 / 6)
    assert m["error_step_agreement"] == 0.5 and m["invalid"] == 1 / 6
    assert "| 6 (2 correct) | 50.0 | 75.0 | 66.7 | 50.0 | 16.7 |" in orm_table(m)


def test_dry_run_plans_the_orm_rules_only_when_asked(tmp_path):
    write_config(tmp_path, orm__trained=True, orm__backend="model")
    jobs = planned_jobs(snakemake(tmp_path, "-n", "--cores", "2"))
    assert (jobs["orm_data"], jobs["orm_train"], jobs["orm_evaluate"], jobs["judge"]) == (1, 1, 1, 2)


@pytest.mark.slow
def test_whole_dag_with_a_trained_model_orm_judging(tmp_path):
    write_config(
        tmp_path,
        orm__trained=True,
        orm__backend="model",
        orm__prompt_version="brief",
        orm__max_new_tokens=16,
        orm__train={"max_steps": 3, "min_steps": 3, "per_device_train_batch_size": 4},
    )
    snakemake(tmp_path, "--cores", "2")
    res = tmp_path / "results"
    assert (res / "orm/eval.md").read_text().startswith("| paths |")
    evals = read_table(res / "orm/eval.parquet", "orm_eval")
    assert evals.height == 9 and set(evals["pred_status"]) <= {"CORRECT", "WRONG", "INVALID"}
    for r in (1, 2):
        judged = read_table(res / f"round_{r}/judgments.parquet", "judgment")
        assert judged["judge"].str.ends_with("+results/orm/adapter)").all()
        stats = read_table(res / f"round_{r}/judge_stats.parquet", "judge_stats").row(0, named=True)
        assert stats["n"] == judged.height and stats["round"] == r and 0 <= stats["agreement"] <= 1
