"""The Snakemake DAG: lint, dry run, config errors, and the whole loop on the tiny config."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml

from mathse.artifacts import SCHEMAS, read_table, same_artifact

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile")]
# Every test here starts Snakemake (seconds for a dry run, minutes for a run): none is in `make test-quick`.
pytestmark = pytest.mark.slow


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [*SNAKEMAKE, "--directory", str(workdir), "--configfile", str(workdir / "config.yaml"), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}")
    return proc


def write_config(workdir: Path, **overrides) -> None:
    cfg = yaml.safe_load((ROOT / "tests/config_tiny.yaml").read_text())
    for key, value in overrides.items():
        section, name = key.split("__")
        cfg.setdefault(section, {})[name] = value
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg))


def planned_jobs(proc: subprocess.CompletedProcess) -> dict[str, int]:
    """Job counts from the dry run's 'Job stats' table."""
    jobs, in_table = {}, False
    for line in (proc.stdout + proc.stderr).splitlines():
        parts = line.split()
        if parts[:2] == ["job", "count"]:
            in_table = True
            continue
        if in_table and len(parts) == 2 and parts[1].isdigit():
            if parts[0] == "total":
                break
            jobs[parts[0]] = int(parts[1])
    return jobs


def test_lint_is_clean():
    proc = subprocess.run([*SNAKEMAKE, "--lint"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dry_run_plans_every_stage(tmp_path):
    write_config(tmp_path)
    jobs = planned_jobs(snakemake(tmp_path, "-n", "--cores", "2"))
    # base + rounds 0..2 evaluated; rounds 1..2 each roll out, judge, reflect.
    assert jobs == {
        "all": 1,
        "prepare": 1,
        "make_tiny_model": 1,
        "distill": 1,
        "rollout": 2,
        "judge": 2,
        "reflect": 2,
        "assemble": 3,
        "train": 3,
        "evaluate": 4,
        "summarize": 1,
        "plots": 1,
        "curves": 1,
        "gallery": 2,
    }


@pytest.mark.parametrize(("schedule", "reflects"), [("every_round", 2), ("final", 1), ("off", 0)])
def test_reflection_schedule_shapes_the_dag(tmp_path, schedule, reflects):
    write_config(tmp_path, reflection__schedule=schedule)
    jobs = planned_jobs(snakemake(tmp_path, "-n", "--cores", "2"))
    assert jobs.get("reflect", 0) == reflects


def test_vllm_backend_plans_the_same_dag(tmp_path):
    """rollout/eval/ORM on vLLM: the same jobs (their conda env is envs/vllm.yaml, see common.smk)."""
    write_config(tmp_path, rollout__backend="vllm", eval__backend="vllm", vllm__tensor_parallel_size=2)
    jobs = planned_jobs(snakemake(tmp_path, "-n", "--cores", "2"))
    assert jobs["rollout"] == 2 and jobs["evaluate"] == 4


def test_invalid_config_fails_before_any_job(tmp_path):
    write_config(tmp_path, train__method="qlora")
    proc = snakemake(tmp_path, "--cores", "2", check=False)
    assert proc.returncode != 0
    assert "train" in proc.stderr and "qlora" in proc.stderr
    assert not (tmp_path / "results").exists()


def test_missing_model_path_fails_before_any_job(tmp_path):
    write_config(tmp_path, model__make_tiny=False, model__path="/nonexistent/Qwen2-VL-7B-Instruct")
    proc = snakemake(tmp_path, "--cores", "2", check=False)
    assert proc.returncode != 0
    assert "model.path" in proc.stderr and "/nonexistent/Qwen2-VL-7B-Instruct" in proc.stderr
    assert not (tmp_path / "results").exists()


@pytest.fixture
def finished_run(tiny_run) -> Path:
    """The session's whole tiny DAG run (conftest.py), shared with test_report."""
    return tiny_run


ARTIFACTS = {
    "results/data/seed.parquet": "problem",
    "results/data/pool.parquet": "problem",
    "results/data/bench/synthetic.parquet": "problem",
    "results/base/scores/synthetic.parquet": "score",
    "results/round_0/distilled.parquet": "distilled",
    "results/round_0/distill_cost.parquet": "api_cost",
    "results/summary.parquet": "summary",
    **{
        f"results/round_{r}/{name}.parquet": kind
        for r in (0, 1, 2)
        for name, kind in [("train", "train"), ("remain", "problem")]
    },
    **{f"results/round_{r}/scores/synthetic.parquet": "score" for r in (0, 1, 2)},
    **{
        f"results/round_{r}/{name}.parquet": kind
        for r in (1, 2)
        for name, kind in [
            ("rollouts", "rollout"),
            ("judgments", "judgment"),
            ("judge_stats", "judge_stats"),
            ("judge_cost", "api_cost"),
            ("reflections", "reflection"),
            ("reflect_cost", "api_cost"),
            ("rollout_stats", "generation_stats"),
        ]
    },
    **{f"results/round_{r}/adapter/train_metrics.parquet": "train_metrics" for r in (0, 1, 2)},
    **{f"results/{s}/evaluate_stats/synthetic.parquet": "generation_stats" for s in ("base", "round_0", "round_1")},
}


@pytest.mark.slow
def test_whole_dag_writes_every_artifact_with_its_schema(finished_run):
    for rel, kind in ARTIFACTS.items():
        df = read_table(finished_run / rel, kind)
        assert dict(df.schema) == SCHEMAS[kind], rel
    for r in (0, 1, 2):
        assert (finished_run / f"results/round_{r}/adapter/config.json").exists()
    summary = pl.read_parquet(finished_run / "results/summary.parquet")
    assert summary["stage"].to_list() == ["base", "round_0", "round_1", "round_2"]
    assert summary["n"].to_list() == [9] * 4
    assert ((summary["accuracy"] >= 0) & (summary["accuracy"] <= 1)).all()
    for log in ["prepare.log", "train/round_1.log", "rollout/round_2.log", "evaluate/base_synthetic.log"]:
        assert (finished_run / "logs" / log).stat().st_size > 0, log


@pytest.mark.slow
def test_whole_dag_rows_carry_provenance_and_the_loop_links_rounds(finished_run):
    res = finished_run / "results"
    rollouts = read_table(res / "round_2/rollouts.parquet", "rollout")
    remain_1 = read_table(res / "round_1/remain.parquet", "problem")
    # Round 2 samples exactly the problems round 1 left unsolved, k=2 times each.
    assert sorted(set(rollouts["problem_id"])) == sorted(remain_1["problem_id"])
    assert rollouts.height == 2 * remain_1.height
    assert set(rollouts["round"]) == {2} and set(rollouts["model"]) == {"tiny-qwen2-vl"}
    judged = read_table(res / "round_1/judgments.parquet", "judgment")
    train_0 = read_table(res / "round_0/train.parquet", "train")
    train_1 = read_table(res / "round_1/train.parquet", "train")
    # Cumulative: round 1's set starts with round 0's rows.
    assert train_1.head(train_0.height).equals(train_0)
    solved = set(judged.filter(pl.col("status") == "CORRECT")["problem_id"])
    assert solved == set(train_1.filter(pl.col("origin") == "self")["problem_id"])
    assert not solved & set(remain_1["problem_id"])
    distilled = read_table(res / "round_0/distilled.parquet", "distilled")
    assert train_0.height == (distilled["status"] == "CORRECT").sum()


@pytest.mark.slow
def test_rerun_of_a_finished_run_runs_nothing(finished_run):
    proc = snakemake(finished_run, "--profile", str(ROOT / "profiles/local"), "--cores", "2", "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_deleting_an_artifact_reruns_only_what_depends_on_it(finished_run, tmp_path):
    work = tmp_path / "copy"
    shutil.copytree(finished_run, work, symlinks=True)
    (work / "results/round_1/judgments.parquet").unlink()
    jobs = planned_jobs(snakemake(work, "--profile", str(ROOT / "profiles/local"), "--cores", "2", "-n"))
    # Round 1 from judge on, and round 2 whose inputs change; nothing of round 0 or before.
    assert jobs == {
        "all": 1,
        "judge": 2,
        "reflect": 2,
        "assemble": 2,
        "train": 2,
        "rollout": 1,
        "evaluate": 2,
        "summarize": 1,
        "plots": 1,
        "curves": 1,
        "gallery": 2,
    }
    snakemake(work, "--profile", str(ROOT / "profiles/local"), "--cores", "2")
    # The rerun rebuilds the same artifacts (the loop is deterministic), and leaves round 0 untouched.
    parquet = sorted(p.relative_to(finished_run) for p in (finished_run / "results").rglob("*.parquet"))
    assert sorted(p.relative_to(work) for p in (work / "results").rglob("*.parquet")) == parquet
    differing = [str(p) for p in parquet if not same_artifact(finished_run / p, work / p)]
    assert not differing, f"the partial rerun's artifacts differ from the finished run's: {differing}"
    rewritten = [
        str(p.relative_to(work))
        for p in (work / "results").rglob("*")
        if p.is_file()
        and (
            not (finished_run / p.relative_to(work)).exists()  # new files (a rerun job's TensorBoard events)
            or p.stat().st_mtime != (finished_run / p.relative_to(work)).stat().st_mtime
        )
    ]
    assert "results/round_1/judgments.parquet" in rewritten and "results/round_2/adapter/model.safetensors" in rewritten
    assert not [p for p in rewritten if p.startswith(("results/round_0/", "results/data/", "results/base/"))]


@pytest.mark.slow
@pytest.mark.parametrize(
    "section, name, value, rerun",
    [
        # read by evaluate only (its params); summarize and plots read its scores
        ("eval", "max_new_tokens", 32, {"all": 1, "evaluate": 4, "summarize": 1, "plots": 1, "curves": 1}),
        # read only where an ORM is trained: the rule-ORM judge and the reflections' re-check do not rerun
        ("orm", "train", {"lr": 1e-3}, {}),
    ],
)
def test_a_changed_setting_reruns_exactly_the_rules_that_read_it(finished_run, tmp_path, section, name, value, rerun):
    work = tmp_path / "copy"
    shutil.copytree(finished_run, work, symlinks=True)
    cfg = yaml.safe_load((work / "config.yaml").read_text())
    cfg.setdefault(section, {})[name] = value
    (work / "config.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(work, "--profile", str(ROOT / "profiles/local"), "--cores", "2", "-n")
    assert planned_jobs(proc) == rerun
    if not rerun:
        assert "Nothing to be done" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_an_edited_script_retrains_nothing(finished_run, tmp_path):
    """rerun-triggers in profiles/default leave out `code`: without that profile the same edit replans train."""
    wf = tmp_path / "workflow-copy"
    wf.mkdir()
    for name in ("Snakefile", "workflow", "scripts", "config", "profiles"):
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy)(ROOT / name, wf / name)
    work = tmp_path / "run"
    shutil.copytree(finished_run, work, symlinks=True)
    with open(wf / "scripts/train.py", "a") as f:
        f.write("\n# an edit that changes no behaviour\n")

    def plan(*args: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "snakemake", "-s", str(wf / "Snakefile"), "--directory", str(work),
               "--configfile", str(work / "config.yaml"), "--cores", "2", "-n", *args]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=wf)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return proc

    proc = plan()
    assert "Nothing to be done" in proc.stdout + proc.stderr, planned_jobs(proc)
    shutil.rmtree(wf / "profiles/default")  # the workflow profile that sets the rerun triggers
    assert planned_jobs(plan()).get("train") == 3


@pytest.mark.slow
def test_forcerun_train_until_a_round_replans_only_up_to_it(finished_run):
    # The recipe of docs/configuration.md: retrain (rounds 0 and 1) and stop after round 1's model.
    proc = snakemake(
        finished_run, "--profile", str(ROOT / "profiles/local"), "--cores", "2", "-n",
        "--forcerun", "train", "--until", "results/round_1/adapter",
    )  # fmt: skip
    assert planned_jobs(proc) == {"train": 2, "rollout": 1, "judge": 1, "reflect": 1, "assemble": 1}


@pytest.mark.parametrize(
    "preset, placeholder",
    [("qwen2-vl-7b", "/path/to/Qwen2-VL-7B-Instruct"), ("internvl2_5-8b", "/path/to/InternVL2_5-8B-hf")],
)
def test_paper_preset_plans_the_7b_run_with_cluster_resources(tmp_path, preset, placeholder):
    model = tmp_path / "checkpoint"
    model.mkdir()
    (model / "config.json").write_text("{}")
    cfg = tmp_path / "config.yaml"
    text = (ROOT / f"config/presets/{preset}.yaml").read_text()
    assert placeholder in text
    # With a trained ORM, so that its rules are planned too.
    cfg.write_text(text.replace(placeholder, str(model)) + "orm:\n  trained: true\n")
    proc = subprocess.run(
        [*SNAKEMAKE, "--directory", str(tmp_path), "--configfile", str(cfg), "--profile", str(ROOT / "profiles/slurm"),
         "-n"], cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = proc.stdout + proc.stderr
    assert "make_tiny_model" not in text
    blocks = {b.split("\n")[0].strip(): b for b in text.split("rule ")[1:]}
    train = next(b for name, b in blocks.items() if name.startswith("train:"))
    # One node's 8 GPUs for the FSDP full fine-tuning the presets ask for.
    assert "gpu=8" in train and "nodes=1" in train and "slurm_partition=gpu" in train and "mem_mb=256000" in train
    for rule in ("orm_train", "orm_evaluate", "rollout", "evaluate"):
        block = next(b for name, b in blocks.items() if name.startswith(f"{rule}:"))
        assert "gpu=1" in block and "slurm_partition=gpu" in block, block
    prepare = next(b for name, b in blocks.items() if name.startswith("prepare:"))
    assert "gpu" not in prepare.split("resources:")[1].split("\n")[0]
    assert "slurm_partition=cpu" in prepare


# ---------------------------------------------------------------------------------------------------
# Benchmark suites from local files flow through import, evaluate and the summary.

SUITES = ["synthetic", "gps", "mathvista", "mathverse", "mathvision"]


def add_benchmarks(workdir: Path, files: dict[str, Path], suites=SUITES, **run) -> None:
    cfg = yaml.safe_load((workdir / "config.yaml").read_text())
    cfg["data"]["benchmarks"] = {
        "gps": {"format": "mathvista", "path": str(files["mathvista"]), "where": {"task": "geometry problem solving"}},
        "mathvista": {"format": "mathvista", "path": str(files["mathvista"].parent / "testmini-*.parquet")},
        "mathverse": {"format": "mathverse", "path": str(files["mathverse"]), "limit": 3},
        "mathvision": {"format": "mathvision", "path": str(files["mathvision"])},
    }
    cfg["eval"]["suites"] = list(suites)
    cfg["run"].update(run)
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg))


def test_dry_run_imports_and_scores_each_benchmark_suite(tmp_path, benchmark_files):
    write_config(tmp_path)
    add_benchmarks(tmp_path, benchmark_files)
    jobs = planned_jobs(snakemake(tmp_path, "-n", "--cores", "2"))
    assert jobs["import_benchmark"] == 4 and jobs["prepare"] == 1
    assert jobs["evaluate"] == 4 * len(SUITES)


def test_a_missing_benchmark_file_fails_before_any_job(tmp_path, benchmark_files):
    write_config(tmp_path)
    add_benchmarks(tmp_path, {**benchmark_files, "mathverse": tmp_path / "MathVerse/testmini.parquet"})
    proc = snakemake(tmp_path, "--cores", "2", check=False)
    assert proc.returncode != 0
    assert "MathVerse/testmini.parquet" in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_adding_a_benchmark_to_a_finished_run_does_not_retrain(finished_run, tmp_path, benchmark_files):
    work = tmp_path / "copy"
    shutil.copytree(finished_run, work, symlinks=True)
    add_benchmarks(work, benchmark_files, suites=["synthetic", "mathvision"])
    jobs = planned_jobs(snakemake(work, "--profile", str(ROOT / "profiles/local"), "--cores", "2", "-n"))
    # The new suite is imported and scored at every stage; the report figures take it in.
    assert jobs == {"all": 1, "import_benchmark": 1, "evaluate": 4, "summarize": 1, "plots": 1, "curves": 1}


@pytest.mark.slow
def test_benchmark_suites_are_scored_by_their_rules_into_the_summary(tmp_path, benchmark_files):
    # Benchmark suites only (no procedural test suite), to keep the run short: 2 stages x 3 suites.
    suites = ["gps", "mathverse", "mathvision"]
    write_config(tmp_path)
    add_benchmarks(tmp_path, benchmark_files, suites=suites, rounds=0)
    snakemake(tmp_path, "--profile", str(ROOT / "profiles/local"), "--cores", "2")
    res = tmp_path / "results"
    for suite, n, scoring in [("gps", 2, "mathvista"), ("mathverse", 3, "mathverse"), ("mathvision", 4, "mathvision")]:
        assert read_table(res / f"data/bench/{suite}.parquet", "problem").height == n, suite
        for stage in ["base", "round_0"]:
            scores = read_table(res / f"{stage}/scores/{suite}.parquet", "score")
            assert set(scores["scoring"]) == {scoring} and scores.height == n, (stage, suite)
    assert not (res / "data/bench/synthetic.parquet").exists()
    assert (res / "data/bench/gps.quarantine.jsonl").read_text().count("\n") == 5
    assert (res / "data/bench/mathvision.contamination.jsonl").exists()
    assert "contamination:" in (tmp_path / "logs/import_benchmark/mathvision.log").read_text()
    table = (res / "summary.md").read_text().splitlines()
    assert table[0] == "| stage | train examples | " + " | ".join(suites) + " | average |"
    summary = pl.read_parquet(res / "summary.parquet")
    assert summary["suite"].unique(maintain_order=True).to_list() == suites


def write_mathvision_parquet(jsonl: Path, out: Path) -> None:
    """MATH-Vision as on the Hugging Face hub (data/test-*.parquet, images inside), from the fixture JSONL."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = []
    for line in jsonl.read_text().splitlines():
        rec = json.loads(line)
        image = jsonl.parent.parent / rec["image"]
        rec["decoded_image"] = {"bytes": image.read_bytes(), "path": rec["image"]} if image.exists() else None
        rows.append(rec)
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), out)


@pytest.mark.slow
def test_benchmark_presets_scores_only_command_runs_as_written(tmp_path, tiny_model_dir):
    """The command of docs/benchmarks.md, run by bash in a folder laid out as the page says, the tiny model as
    checkpoint."""
    from conftest import write_mathverse, write_mathvision, write_mathvista
    from doccommands import doc_command

    cmd = doc_command(
        "docs/benchmarks.md", ".venv/bin/snakemake results/base/scores/{gps,mathvista,mathverse,mathvision}.parquet"
    )
    assert cmd.startswith(".venv/bin/snakemake ") and "--configfile config/presets/benchmarks.yaml" in cmd
    for name in ("Snakefile", "workflow", "scripts", "profiles"):
        (tmp_path / name).symlink_to(ROOT / name)
    # The preset as shipped, but short answers in float32: the tiny model would write 1024 tokens each.
    preset = yaml.safe_load((ROOT / "config/presets/benchmarks.yaml").read_text())
    preset["eval"]["max_new_tokens"], preset["model"]["torch_dtype"] = 16, "float32"
    (tmp_path / "config/presets").mkdir(parents=True)
    (tmp_path / "config/presets/benchmarks.yaml").write_text(yaml.safe_dump(preset))
    (tmp_path / "config/config.yaml").symlink_to(ROOT / "config/config.yaml")
    (tmp_path / ".venv/bin").mkdir(parents=True)
    (tmp_path / ".venv/bin/snakemake").write_text(f'#!/bin/sh\nexec {sys.executable} -m snakemake "$@"\n')
    (tmp_path / ".venv/bin/snakemake").chmod(0o755)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints/Qwen2-VL-7B-Instruct").symlink_to(tiny_model_dir)
    bench = tmp_path / "benchmarks"
    write_mathvista(bench)
    write_mathverse(bench)
    write_mathvision_parquet(write_mathvision(tmp_path / "raw"), bench / "MathVision/data/test-00000-of-00001.parquet")
    proc = subprocess.run(["bash", "-c", cmd], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    for suite, n in [("gps", 2), ("mathvista", 5), ("mathverse", 5), ("mathvision", 4)]:
        scores = read_table(tmp_path / f"results/base/scores/{suite}.parquet", "score")
        assert scores.height == n and set(scores["stage"]) == {"base"}, suite
    assert not (tmp_path / "results/round_0").exists(), "the scores-only command trains nothing"
