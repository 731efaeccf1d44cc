"""The `openai` teacher and the model ORM against a real OpenAI-compatible server on loopback.

`python -m mathse.generation.serve` serves the tiny random model (conftest `served_model`), so its text is nonsense:
these tests check the plumbing - requests made, rows written with provenance, verdicts recorded (mostly
as parse failures), a rerun making no request at all - and that a planted API key is never written.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml
from conftest import PLANTED_KEY_ENV, ROOT

from mathse.artifacts import SCHEMAS, read_table, write_table
from mathse.config import EndpointConfig, OrmConfig, OrmHfConfig, ReflectionConfig, TeacherConfig
from mathse.judging.orm import run_judge
from mathse.judging.teacher import distill, reflect
from mathse.prompts import format_solution


def endpoint(served_model, cache: Path, **kw) -> EndpointConfig:
    base_url, name, _ = served_model
    return EndpointConfig(
        base_url=base_url,
        model=name,
        api_key_env=PLANTED_KEY_ENV,
        max_tokens=24,
        timeout_s=60,
        backoff_s=0.1,
        max_concurrency=2,
        cache_dir=str(cache),
        **kw,
    )


def wrong_paths(data_dir: Path, path: Path, n: int = 3) -> None:
    """A judgments table with one wrong path for each of the first n pool problems."""
    pool = read_table(data_dir / "pool.parquet", "problem").head(n)
    rows = []
    for p in pool.iter_rows(named=True):
        steps = p["solution_steps"]
        wrong = format_solution(steps[:-1] + ["1 + 1 = 3."], "3")
        rows.append(
            {
                "problem_id": p["problem_id"],
                "sample_idx": 0,
                "response": wrong,
                "extracted": "3",
                "answer_correct": False,
                "status": "WRONG",
                "error_step": len(steps),
                "error_analysis": f"Step {len(steps)} states '1 + 1 = 3.', but it should be '{steps[-1]}'.",
                "improvement_suggestion": "Redo the last step.",
                "judge": "rule-orm-v1",
                "judgment_json": "{}",
                "round": 1,
                "model": "tiny-qwen2-vl",
                "backend": "hf",
                "prompt_version": "v1",
                "seed": 0,
            }
        )
    write_table(pl.DataFrame(rows), path, "judgment")


def test_distill_and_reflect_through_a_real_server_then_the_rerun_makes_no_request(
    data_dir, served_model, planted_key, tmp_path, monkeypatch
):
    monkeypatch.setenv(PLANTED_KEY_ENV, planted_key)
    teacher = TeacherConfig(backend="openai", openai=endpoint(served_model, tmp_path / "cache"))
    seed = read_table(data_dir / "seed.parquet", "problem")
    wrong_paths(data_dir, tmp_path / "judgments.parquet")
    problems = [str(data_dir / "seed.parquet"), str(data_dir / "pool.parquet")]

    def run(tag: str) -> tuple[pl.DataFrame, pl.DataFrame, dict, dict]:
        d = distill(
            str(data_dir / "seed.parquet"), str(tmp_path / f"d{tag}.parquet"), teacher, 0, str(tmp_path / f"dc{tag}")
        )
        r = reflect(
            [str(tmp_path / "judgments.parquet")],
            problems,
            str(tmp_path / f"r{tag}.parquet"),
            teacher,
            ReflectionConfig(),
            round_idx=1,
            seed=0,
            cost_path=str(tmp_path / f"rc{tag}"),
        )
        costs = [read_table(tmp_path / f"{c}{tag}", "api_cost").row(0, named=True) for c in ("dc", "rc")]
        return d, r, *costs

    d1, r1, dcost1, rcost1 = run("1")
    assert d1["problem_id"].to_list() == seed["problem_id"].to_list()
    assert set(d1["model"]) == {"tiny-teacher"} and set(d1["backend"]) == {"openai"}
    assert set(d1["prompt_version"]) == {"v1"} and set(d1["status"]) <= {"CORRECT", "WRONG"}
    assert r1.height == 3 and set(r1["source_round"]) == {1} and set(r1["model"]) == {"tiny-teacher"}
    assert r1["accepted"].to_list() == (r1["status"] == "CORRECT").to_list()
    assert (dcost1["requests"], dcost1["cache_hits"], dcost1["completions"]) == (seed.height, 0, seed.height)
    assert (rcost1["requests"], rcost1["cache_hits"]) == (3, 0)
    assert dcost1["prompt_tokens"] > 0 and dcost1["completion_tokens"] > 0

    d2, r2, dcost2, rcost2 = run("2")
    assert (dcost2["requests"], dcost2["cache_hits"], dcost2["prompt_tokens"]) == (0, seed.height, 0)
    assert (rcost2["requests"], rcost2["cache_hits"]) == (0, 3)
    assert dcost2["cached_prompt_tokens"] == dcost1["prompt_tokens"]
    assert d2.equals(d1) and r2.equals(r1)


def rollouts(data_dir: Path, path: Path) -> pl.DataFrame:
    pool = read_table(data_dir / "pool.parquet", "problem").head(3)
    rows = []
    for i, p in enumerate(pool.iter_rows(named=True)):
        right = format_solution(p["solution_steps"], p["answer"])
        for k, response in enumerate([right, format_solution(["1 + 1 = 3."], "3")]):
            rows.append(
                {
                    "problem_id": p["problem_id"],
                    "sample_idx": k,
                    "response": response,
                    "num_tokens": 10,
                    "finished": True,
                    "temperature": 1.0,
                    "top_p": 1.0,
                    "round": 1,
                    "model": "tiny-qwen2-vl",
                    "backend": "hf",
                    "prompt_version": "v1",
                    "seed": i,
                }
            )
    return write_table(pl.DataFrame(rows), path, "rollout")


@pytest.mark.parametrize("transport", ["openai", "hf"])
def test_model_orm_records_its_verdicts_parse_failures_and_agreement(
    data_dir, tiny_model_dir, served_model, planted_key, tmp_path, monkeypatch, transport
):
    monkeypatch.setenv(PLANTED_KEY_ENV, planted_key)
    paths = rollouts(data_dir, tmp_path / "rollouts.parquet")
    cfg = OrmConfig(
        backend="model",
        transport=transport,
        name="tiny-orm",
        max_new_tokens=24,
        hf=OrmHfConfig(path=str(tiny_model_dir)),
        openai=endpoint(served_model, tmp_path / "cache"),
    )
    out = run_judge(
        str(tmp_path / "rollouts.parquet"),
        str(data_dir / "pool.parquet"),
        str(tmp_path / "j.parquet"),
        cfg,
        round_idx=1,
        stats_path=str(tmp_path / "stats.parquet"),
        cost_path=str(tmp_path / "cost.parquet"),
    )
    assert out.height == paths.height
    assert out["answer_correct"].to_list() == [True, False] * 3  # math-verify, whatever the judge says
    assert set(out["status"]) <= {"CORRECT", "WRONG", "INVALID"}
    judge_model = "tiny-teacher" if transport == "openai" else tiny_model_dir
    assert set(out["judge"]) == {f"tiny-orm ({transport}:{judge_model})"}
    # The random tiny model writes no JSON: every verdict is a recorded parse failure, none counted correct.
    invalid = out.filter(pl.col("status") == "INVALID")
    assert invalid.height == out.height
    assert invalid["error_analysis"].str.starts_with("unparsable judge output").all()
    assert (invalid["judgment_json"].str.len_chars() > 0).all()  # the raw text is kept
    stats = read_table(tmp_path / "stats.parquet", "judge_stats").row(0, named=True)
    assert (stats["n"], stats["n_invalid"], stats["n_answer_correct"], stats["agreement"]) == (6, 6, 3, 0.5)
    cost = read_table(tmp_path / "cost.parquet", "api_cost").row(0, named=True)
    assert cost["requests"] == (6 if transport == "openai" else 0) and cost["rule"] == "judge"


def snakemake(workdir: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir)]
    cmd += ["--configfile", str(workdir / "config.yaml"), "--cores", "1", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc


@pytest.mark.slow
def test_rules_through_the_server_never_write_the_api_key(data_dir, served_model, planted_key, tmp_path):
    """distill and reflect as Snakemake rules through the server; the planted key is found nowhere."""
    import os

    base_url, name, server_log = served_model
    cfg = yaml.safe_load((ROOT / "tests/config_tiny.yaml").read_text())
    cfg["run"].update(results_dir="results", logs_dir="logs")
    cfg["model"] = {"path": str(tmp_path / "model"), "make_tiny": True}
    openai = dict(base_url=base_url, model=name, api_key_env=PLANTED_KEY_ENV, max_tokens=16, cache_dir="cache/api")
    cfg["teacher"] = {"backend": "openai", "openai": openai}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    env = {**os.environ, PLANTED_KEY_ENV: planted_key, "PYTHONPATH": str(ROOT / "src")}
    res = tmp_path / "results"

    snakemake(tmp_path, env, "results/round_0/distilled.parquet", "results/round_0/distill_cost.parquet")
    n_seed = read_table(res / "data/seed.parquet", "problem").height
    cost = read_table(res / "round_0/distill_cost.parquet", "api_cost").row(0, named=True)
    assert (cost["requests"], cost["cache_hits"]) == (n_seed, 0)
    # The reflect rule on hand-made wrong paths (the tiny teacher's nonsense cannot train a round 0 model).
    (res / "round_1").mkdir()
    wrong_paths(res / "data", res / "round_1/judgments.parquet")
    snakemake(tmp_path, env, "results/round_1/reflections.parquet", "--allowed-rules", "reflect")
    refl = read_table(res / "round_1/reflections.parquet", "reflection")
    assert refl.height == 3 and set(refl["backend"]) == {"openai"}
    # A forced rerun pays for nothing.
    snakemake(tmp_path, env, "results/round_0/distill_cost.parquet", "--forcerun", "distill")
    cost = read_table(res / "round_0/distill_cost.parquet", "api_cost").row(0, named=True)
    assert (cost["requests"], cost["cache_hits"]) == (0, n_seed)
    assert len(list((tmp_path / "cache/api").rglob("*.json"))) == n_seed + 3

    key = planted_key.encode()
    searched = 0
    for path in [*tmp_path.rglob("*"), server_log]:
        if path.is_file():
            searched += 1
            assert key not in path.read_bytes(), f"the API key leaked into {path}"
    assert searched > 20 and set(SCHEMAS) >= {"api_cost"}


def test_answer_extractor_asks_the_server_only_where_the_rules_find_nothing(
    served_model, planted_key, data_dir, tmp_path, monkeypatch
):
    from mathse.config import ExtractorConfig
    from mathse.judging.extractor import LlmExtractor
    from mathse.judging.scoring import score_table

    problems = read_table(data_dir / "bench/synthetic.parquet", "problem").head(4)
    responses = [
        f"Step 1: ...\nThe answer to this problem is {problems['answer'][0]}.",  # the rules find it
        "I think the bars add up to something, but I am not sure what.",  # no rule answer: asked
        "",  # nothing to extract: not asked
        "The total is hard to say.",  # asked
    ]
    monkeypatch.setenv(PLANTED_KEY_ENV, planted_key)
    cfg = ExtractorConfig(backend="openai", openai=endpoint(served_model, tmp_path / "cache"))
    extractor = LlmExtractor(cfg)
    scores = score_table(problems, responses, "mathse", extractor)
    assert extractor.client.usage.requests == 2 and extractor.client.usage.cache_hits == 0
    assert scores["rule"][0] == "answer_prefix" and scores["correct"][0]
    assert scores["extractor"][0] is None and scores["extractor"][2] is None
    # The tiny model's replies are nonsense, taken as the answer unless empty or NONE (both cases are pinned
    # down with scripted replies in tests/test_api.py); either way the row says which it was.
    asked = scores[[1, 3]].select("rule", "extractor", "extracted").rows()
    named = ("llm_extractor", "tiny-teacher@v1")
    assert all(row == ("none", None, None) or (row[:2] == named and row[2]) for row in asked), asked
    again = LlmExtractor(cfg)
    assert score_table(problems, responses, "mathse", again).equals(scores)
    assert again.client.usage.requests == 0 and again.client.usage.cache_hits == 2


def test_orm_data_wrong_paths_are_annotated_by_the_api_teacher(
    served_model, planted_key, data_dir, tmp_path, monkeypatch
):
    from mathse.judging.orm_train import build_orm_data

    monkeypatch.setenv(PLANTED_KEY_ENV, planted_key)
    teacher = TeacherConfig(backend="openai", openai=endpoint(served_model, tmp_path / "cache"))
    out = {k: str(tmp_path / f"{k}.parquet") for k in ("train", "eval", "cost", "bad")}

    def build():
        build_orm_data(
            [str(data_dir / "seed.parquet")], [str(data_dir / "bench/synthetic.parquet")], out["train"], out["eval"],
            OrmConfig(prompt_version="brief", paths_per_problem=1, final_line_examples=False), seed=0, teacher=teacher,
            cost_out=out["cost"], quarantine_out=out["bad"],
        )  # fmt: skip
        return (read_table(out[k], kind) for k, kind in
                [("train", "train"), ("eval", "orm_example"), ("cost", "api_cost"), ("bad", "quarantine")])  # fmt: skip

    train, held, cost, bad = build()
    labels = train["response"].map_elements(lambda s: json.loads(s)["status"], return_dtype=pl.String)
    n_correct = int((labels == "CORRECT").sum()) + int((held["status"] == "CORRECT").sum())
    n_paths = 12 + 6  # seed and held-out problems, one path each
    # Only the wrong paths were sent; the tiny model's replies are not the JSON, so they are quarantined.
    assert cost["requests"].sum() == n_paths - n_correct > 0
    assert train.height + held.height + bad.height == n_paths
    assert bad["reason"].str.starts_with("teacher annotation").all()
    assert set(train["model"]) == {"tiny-teacher"} and set(train["backend"]) == {"openai"}
    train2, _, cost2, _ = build()
    assert train2.equals(train) and cost2["requests"].sum() == 0 and cost2["cache_hits"].sum() == cost["requests"].sum()
