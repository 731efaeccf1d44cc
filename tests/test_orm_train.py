"""ORM training data, the paper's ORM metrics, and the ORM rules in the DAG."""

from __future__ import annotations

import json
import math
import re
import shlex
import shutil
import subprocess
import sys

import polars as pl
import pytest
import yaml
from test_workflow import ROOT, planned_jobs, snakemake, write_config

from mathse.artifacts import read_table
from mathse.config import OrmConfig
from mathse.judging.orm.rule import judge_path
from mathse.judging.orm_train import (
    build_orm_data,
    orm_examples,
    orm_metrics,
    orm_paths,
    orm_table,
    sampled_paths,
    table5,
)


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


def test_several_paths_per_problem_contrast_a_right_path_with_different_wrong_ones(data_dir):
    problems = read_table(data_dir / "pool.parquet", "problem")
    paths = orm_paths(problems, 0.25, seed=0, stream=0, per_problem=4)
    right = [judge_path(p["response"], p["answer"], p["solution_steps"])[1] for p in paths]
    per = (
        pl.DataFrame(
            {
                "problem_id": [p["problem_id"] for p in paths],
                "idx": [p["sample_idx"] for p in paths],
                "response": [p["response"] for p in paths],
                "right": right,
            }
        )  # fmt: skip
        .group_by("problem_id")
        .agg(n=pl.len(), n_right=pl.col("right").sum(), n_distinct=pl.col("response").n_unique(), idx=pl.col("idx"))
    )
    assert per["n"].to_list() == [4] * problems.height and (per["n_right"] == 1).all()
    assert (per["n_distinct"] == 4).all() and per["idx"].list.sort().to_list() == [[0, 1, 2, 3]] * problems.height
    one = orm_paths(problems, 0.5, seed=0, stream=0)
    assert sum(judge_path(p["response"], p["answer"], p["solution_steps"])[1] for p in one) == round(0.5 * len(one))


def test_a_misread_value_is_carried_through_the_later_steps_as_a_model_would(data_dir):
    # The model's own wrong paths misread a value and then reason right from it: every step after the misread
    # one follows from the steps before it, and only the misread step differs from the reference trace there.
    problems = pl.concat([read_table(data_dir / f"{s}.parquet", "problem") for s in ("seed", "pool")])
    arith = re.compile(r"(-?\d+) ([-+x]) (-?\d+) = (-?\d+)\.$")
    carried = 0
    for p in orm_paths(problems, 0.0, seed=0, stream=0, per_problem=2):
        status, ok, v = judge_path(p["response"], p["answer"], p["solution_steps"])
        assert not ok and v.status == "WRONG", p["response"]
        lines = p["response"].splitlines()
        steps, final = [line.split(": ", 1)[1] for line in lines[:-1]], lines[-1]
        for step in steps[v.error_step :]:  # after the error step, right arithmetic (the other steps read values)
            x, op, y, z = arith.search(step).groups() if arith.search(step) else ("0", "+", "0", "0")
            assert {"+": int(x) + int(y), "-": int(x) - int(y), "x": int(x) * int(y)}[op] == int(z), p["response"]
        assert final.rstrip(".").endswith(" " + arith.search(steps[-1]).group(4)), p["response"]  # answer follows
        carried += v.error_step < len(steps)
    assert carried > 0  # misreads before the last step, not only last-step slips


def test_sampled_paths_keep_the_configured_share_of_right_ones(data_dir, tmp_path):
    from mathse.artifacts import write_table
    from mathse.prompts import format_solution

    problems = read_table(data_dir / "seed.parquet", "problem")
    rows = []
    for p in problems.iter_rows(named=True):
        right = format_solution(p["solution_steps"], p["answer"])
        wrong = [format_solution(p["solution_steps"], str(int(p["answer"]) + d)) for d in (1, 2)]
        for j, response in enumerate([right, right, *wrong, "no steps at all"]):  # a duplicate, an unparsable path
            rows.append({"problem_id": p["problem_id"], "sample_idx": j, "response": response, "num_tokens": 9,
                         "finished": True, "temperature": 1.0, "top_p": 1.0, "round": 0, "model": "m",
                         "backend": "hf", "prompt_version": "v1", "seed": 0})  # fmt: skip
    write_table(pl.DataFrame(rows), tmp_path / "r.parquet", "rollout")
    rollouts = read_table(tmp_path / "r.parquet", "rollout")
    paths = sampled_paths(rollouts, problems, 0.5, seed=0, stream=0)
    right = [judge_path(p["response"], p["answer"], p["solution_steps"])[1] for p in paths]
    # 12 distinct right paths, 36 wrong ones: all right ones kept, as many wrong ones drawn.
    assert sum(right) == problems.height and len(paths) == 2 * problems.height
    assert len({(p["problem_id"], p["response"]) for p in paths}) == len(paths)
    assert sum(r for r in right) == len(sampled_paths(rollouts, problems, 0.25, 0, 0)) // 4
    cfg = OrmConfig(paths="sampled")
    build_orm_data([str(data_dir / "seed.parquet")], [str(data_dir / "seed.parquet")], str(tmp_path / "t.parquet"),
                   str(tmp_path / "e.parquet"), cfg, seed=0, rollouts=([str(tmp_path / "r.parquet")],) * 2)  # fmt: skip
    held = read_table(tmp_path / "e.parquet", "orm_example")
    assert held.height == 24 and (held["status"] == "CORRECT").sum() == 12
    assert held.filter(pl.col("status") == "WRONG")["judgment_json"].str.contains('"error_step": ').all()


def test_orm_data_trains_on_seed_and_pool_and_holds_out_the_suite(data_dir, tmp_path):
    cfg = OrmConfig(prompt_version="brief", paths_per_problem=1)
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
    assert train.height == 2 * 21 and held.height == 6
    whole, final = (
        train.filter(~pl.col("problem_id").str.ends_with("#final")),
        train.filter(pl.col("problem_id").str.ends_with("#final")),
    )
    assert whole.height == final.height == 21 and whole["question"].str.contains("Step 1: ").all()
    # A final-line row: the path's last sentence and the reference answer under the ORM prompt, status only.
    for w, f in zip(whole.iter_rows(named=True), final.iter_rows(named=True), strict=True):
        last = [line for line in w["question"].splitlines() if line.startswith("The answer to this problem is")]
        assert "Step" not in f["question"] and last[0] in f["question"] and "Question: \n" in f["question"]
        assert f["response"] == json.dumps({"status": json.loads(w["response"])["status"]})
    assert train["question"].str.contains("Reference answer: ").all() and set(train["origin"]) == {"orm"}
    assert (
        train["response"]
        .map_elements(lambda s: json.loads(s)["status"], return_dtype=pl.String)
        .is_in(["CORRECT", "WRONG"])
        .all()
    )
    assert not set(held["problem_id"]) & {p.split("#orm")[0] for p in train["problem_id"]}


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


@pytest.mark.slow  # four Snakemake dry runs
def test_dry_run_plans_the_orm_rules_only_when_asked(tmp_path):
    write_config(tmp_path, orm__trained=True, orm__backend="model")
    jobs = planned_jobs(snakemake(tmp_path, "-n", "--cores", "2"))
    assert (jobs["orm_data"], jobs["orm_train"], jobs["orm_evaluate"], jobs["judge"]) == (1, 1, 1, 2)
    assert jobs["make_orm_model"] == 1 and "orm_train_binary" not in jobs  # Table 5's arm only when asked
    table5 = planned_jobs(snakemake(tmp_path, "-n", "--cores", "2", "results/orm/table5.md"))
    assert table5 == {
        "prepare": 1, "make_orm_model": 1, "orm_data": 1, "orm_train": 1, "orm_train_binary": 1,
        "orm_evaluate": 1, "orm_evaluate_binary": 1, "orm_table5": 1,
    }  # fmt: skip
    write_config(tmp_path, orm__trained=True, orm__paths="sampled")
    jobs = planned_jobs(snakemake(tmp_path, "-n", "--cores", "2", "results/orm/eval.md"))
    assert jobs["orm_rollout"] == 2 and jobs["train"] == 1  # the round-0 model samples on the seed part and suite
    write_config(tmp_path, orm__trained=True, orm__own_model=False)
    jobs = planned_jobs(snakemake(tmp_path, "-n", "--cores", "2", "results/orm/eval.md"))
    assert "make_orm_model" not in jobs and jobs["make_tiny_model"] == 1  # the ORM fine-tunes the backbone


@pytest.mark.slow
def test_whole_dag_with_a_trained_model_orm_judging(tiny_run, tmp_path):
    """The session's tiny run, then the ORM switched to a trained model: the ORM rules run, every round is
    judged again by it and what follows reruns; round 0, which no judge reads, is kept."""
    shutil.copytree(tiny_run, tmp_path, symlinks=True, dirs_exist_ok=True)
    round0 = (tmp_path / "results/round_0/adapter/mathse_train.json").stat().st_mtime_ns
    write_config(
        tmp_path,
        orm__trained=True,
        orm__backend="model",
        orm__prompt_version="brief",
        orm__max_new_tokens=16,
        orm__final_line_steps=3,
        orm__train={"max_steps": 3, "min_steps": 3, "per_device_train_batch_size": 4},
    )
    snakemake(tmp_path, "--cores", "2")
    res = tmp_path / "results"
    assert (res / "round_0/adapter/mathse_train.json").stat().st_mtime_ns == round0
    assert (res / "orm/eval.md").read_text().startswith("| paths |")
    evals = read_table(res / "orm/eval.parquet", "orm_eval")
    assert evals.height == 9 and set(evals["pred_status"]) <= {"CORRECT", "WRONG", "INVALID"}
    for r in (1, 2):
        judged = read_table(res / f"round_{r}/judgments.parquet", "judgment")
        assert judged["judge"].str.ends_with("+results/orm/adapter)").all()
        stats = read_table(res / f"round_{r}/judge_stats.parquet", "judge_stats").row(0, named=True)
        assert stats["n"] == judged.height and stats["round"] == r
        # A round whose pool the judge emptied samples nothing: no agreement to report.
        assert (stats["agreement"] is None) if judged.height == 0 else 0 <= stats["agreement"] <= 1
        assert judged.height > 0 or r > 1


def test_table5_sets_the_label_only_orm_beside_the_full_one_on_the_same_paths(tmp_path):
    from mathse.artifacts import write_table

    base = {
        "problem_id": ["a", "b", "c", "d"],
        "response": ["p1", "p2", "p3", "p4"],
        "label_status": ["CORRECT", "CORRECT", "WRONG", "WRONG"],
        "label_step": [None, None, 2, 3],
        "raw": ["", "", "", ""],
    }
    arms = {
        "full": {"pred_status": ["CORRECT", "CORRECT", "WRONG", "WRONG"], "pred_step": [None, None, 2, 1]},
        "binary": {"pred_status": ["CORRECT", "WRONG", "WRONG", "INVALID"], "pred_step": [None, None, None, None]},
    }
    evals, markers = {}, {}
    for arm, pred in arms.items():
        evals[arm] = str(tmp_path / f"{arm}.parquet")
        write_table(pl.DataFrame({**base, **pred}, schema_overrides={"label_step": pl.Int64, "pred_step": pl.Int64}),
                    evals[arm], "orm_eval")  # fmt: skip
        markers[arm] = tmp_path / f"{arm}_adapter"
        markers[arm].mkdir()
        (markers[arm] / "mathse_train.json").write_text(json.dumps({"train_seconds": 61.4 if arm == "full" else 30.2}))
    text = table5(evals, markers, str(tmp_path / "table5.md"))
    assert text == (tmp_path / "table5.md").read_text()
    lines = text.splitlines()
    assert lines[2] == "| status, error step and analysis | 4 (2 correct) | 100.0 | 100.0 | 100.0 | 50.0 | 0.0 | 61 |"
    assert lines[3] == "| status only (label) | 4 (2 correct) | 50.0 | 50.0 | 50.0 | - | 25.0 | 30 |"
    other = pl.read_parquet(evals["binary"]).with_columns(response=pl.lit("other"))
    write_table(other, evals["binary"], "orm_eval")
    with pytest.raises(ValueError, match="other paths"):
        table5(evals, markers, str(tmp_path / "table5.md"))


@pytest.mark.slow
def test_the_docs_orm_command_runs_as_written(tmp_path):
    """The command of docs/backends.md for the ORM rules, word for word (snakemake from this venv, this
    repository's Snakefile), in a folder with the page's my.yaml on the tiny config."""
    from doccommands import doc_command

    page = (ROOT / "docs/backends.md").read_text()
    command = doc_command("docs/backends.md", ".venv/bin/snakemake --profile profiles/local results/orm/eval.md")
    orm = yaml.safe_load(re.search(r"with `(orm: \{[^`]*\})` in `my\.yaml`", page).group(1))["orm"]
    argv = shlex.split(command)
    assert argv.index("results/orm/eval.md") < argv.index("--configfile")  # --configfile takes every word after it
    cfg = yaml.safe_load((ROOT / "tests/config_tiny.yaml").read_text())
    cfg["orm"] = {**orm, "max_new_tokens": 24, "final_line_steps": 3, "train": {"max_steps": 3, "min_steps": 3}}
    (tmp_path / "my.yaml").write_text(yaml.safe_dump(cfg))
    (tmp_path / "profiles").symlink_to(ROOT / "profiles")
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", *argv[1:], "-s", str(ROOT / "Snakefile"), "--cores", "2"],
        cwd=tmp_path, capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert (tmp_path / "results/orm/eval.md").read_text().startswith("| paths |")
    assert not (tmp_path / "results/round_1").exists()  # only the ORM rules (and the data they need) ran


# The binomial test's training: the final-line curriculum, then the whole set (about 40 s on one core). Measured
# on this test's data: 82 of 90 right with these steps (68 are needed), 61 with 250 + 250, chance with 125 + 250.
ORM_TEST_FINAL_LINE_STEPS, ORM_TEST_STEPS = 250, 500


def binomial_upper_tail(k: int, n: int, p: float = 0.5) -> float:
    """P(X >= k) for X ~ Binomial(n, p), exactly."""
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))


@pytest.mark.slow
def test_the_learned_orm_beats_chance_on_held_out_paths_by_more_than_luck(tmp_path):
    """A tiny ORM trained from random weights (its own model, the final-line curriculum) on corrupted paths
    of 300 problems judges 90 held-out paths, half of them right.

    If its verdict did not depend on the path (a coin of any bias q), each path would be judged right with
    probability q or 1 - q, half of each, and the number of right verdicts would be a sum of independent
    Bernoulli trials with mean n/2; by Hoeffding (1956) its upper tail from n/2 + 1 on is at most that of
    Binomial(n, 1/2). The test asks for a count whose tail under that bound is below one in a million.
    """
    from mathse.config import DataConfig
    from mathse.judging.orm_train import evaluate_orm, orm_corpus, train_orm
    from mathse.problems.data import prepare
    from mathse.prompts import RAW_PROMPT_VERSION
    from mathse.training.tiny_model import make_tiny_model

    data = DataConfig(n_seed=60, n_pool=240, n_test=90)
    d = tmp_path / "data"
    prepare(0, data, str(d / "seed.parquet"), str(d / "pool.parquet"), {"synthetic": str(d / "test.parquet")})
    cfg = OrmConfig(
        prompt_version="answer_last",
        paths_per_problem=2,
        final_line_steps=ORM_TEST_FINAL_LINE_STEPS,
        train=OrmConfig().train.model_copy(update={"min_steps": ORM_TEST_STEPS, "max_steps": ORM_TEST_STEPS}),
    )
    model = str(tmp_path / "orm_model")
    make_tiny_model(model, cfg.tiny, data, 0, extra_corpus=orm_corpus(data, cfg.prompt_version))
    build_orm_data([str(d / "seed.parquet"), str(d / "pool.parquet")], [str(d / "test.parquet")],
                   str(tmp_path / "train.parquet"), str(tmp_path / "held.parquet"), cfg, seed=0)  # fmt: skip
    kwargs = dict(train_path=str(tmp_path / "train.parquet"), base_path=model, init_weights=None,
                  out_dir=str(tmp_path / "adapter"), round_idx=0, seed=0,
                  prompt_version=RAW_PROMPT_VERSION)  # fmt: skip
    train_orm(kwargs, cfg.train, cfg.final_line_steps, final_line_batch_size=cfg.final_line_batch_size)
    out = evaluate_orm(str(tmp_path / "held.parquet"), model, str(tmp_path / "adapter"),
                       str(tmp_path / "eval.parquet"), str(tmp_path / "eval.md"), cfg)  # fmt: skip
    n, right = out.height, int((out["label_status"] == out["pred_status"]).sum())
    assert n == 90 and (out["label_status"] == "CORRECT").sum() == 45
    assert right > n // 2 + 1 and binomial_upper_tail(right, n) < 1e-6, (right, n, (tmp_path / "eval.md").read_text())
