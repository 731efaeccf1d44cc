"""Experiments: arms x seeds as one DAG (workflow/experiments.smk), shared work made once, compared with
intervals. The whole experiment runs once per session on the tiny config (2 arms x 2 seeds); a copy of it
then gains two arms (the final-reflection schedule and equal-compute distillation)."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml

from mathse.artifacts import read_table, write_table
from mathse.config import ConfigError
from mathse.experiments import compare, mean_interval, plan

ROOT = Path(__file__).resolve().parents[1]
# One round: an experiment is many runs, and one round shows every link (round 0 shared, round 1 per arm).
TINY = {**yaml.safe_load((ROOT / "tests/config_tiny.yaml").read_text()), "run": {"seed": 0, "rounds": 1}}
ARMS = {"full": {}, "no_reflection": {"reflection": {"schedule": "off"}}}


def experiment_config(arms: dict, seeds=(0, 1)) -> dict:
    return {**TINY, "experiments": {"seeds": list(seeds), "reference": "full", "arms": arms}}


def run_experiment(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "workflow/experiments.smk"), "--directory",
           str(workdir), "--configfile", str(workdir / "experiment.yaml"), "--cores", "2", *args]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}")
    return proc


def planned_jobs(proc: subprocess.CompletedProcess) -> dict[str, int]:
    """Job counts by rule from the dry run's 'Job stats' table."""
    jobs, in_table = {}, False
    for line in (proc.stdout + proc.stderr).splitlines():
        if line.startswith("job ") and "count" in line:
            in_table = True
            continue
        if in_table:
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit():
                if parts[0] == "total":
                    break
                jobs[parts[0]] = int(parts[1])
    return jobs


@pytest.fixture(scope="session")
def finished_experiment(tmp_path_factory):
    work = tmp_path_factory.mktemp("experiment")
    (work / "experiment.yaml").write_text(yaml.safe_dump(experiment_config(ARMS)))
    planned = planned_jobs(run_experiment(work, "-n"))
    run_experiment(work)
    run_experiment(work, "--report", str(work / "report.html"))
    return work, planned


# ---------------------------------------------------------------------------------------------------
# Planning and statistics (no runs)


def test_arms_that_differ_after_round0_share_it_per_seed():
    arms = {
        **ARMS,
        "more_steps": {"train": {"min_steps": 7, "max_steps": 7}},
        "equal_compute": {"run": {"rounds": 0}, "train": {"match_steps_of": "full"}},
    }
    p = plan(experiment_config(arms, seeds=(0, 1, 2)))
    runs = {(r.arm, r.seed): r.config for r in p.runs}
    for seed in (0, 1, 2):
        # full and no_reflection share round 0; a changed train section or the matched steps split it.
        assert runs[("full", seed)]["run"]["round0_dir"] == runs[("no_reflection", seed)]["run"]["round0_dir"]
        assert runs[("full", seed)]["run"]["round0_dir"] != runs[("more_steps", seed)]["run"]["round0_dir"]
        # Every arm of a seed reads the same problems and tiny model.
        assert len({runs[(arm, seed)]["run"]["data_dir"] for arm in arms}) == 1
        assert len({runs[(arm, seed)]["model"]["path"] for arm in arms}) == 1
        matched = runs[("equal_compute", seed)]["train"]["match_steps_of"]
        assert matched == runs[("full", seed)]["run"]["results_dir"] and f"seed_{seed}" in matched
    # Three round-0 owners per seed; the problems are made by the first owner of each seed only.
    assert len(p.owners) == 9
    assert sum(not o.exclude_rules for o in p.owners) == 3
    assert {r.config["run"]["seed"] for r in p.runs} == {0, 1, 2}


def test_settings_round0_never_reads_do_not_split_it():
    """An arm that only changes how later rounds assemble, or (with train.round0_min_steps set) only the later
    rounds' steps, shares round 0 with the arm that changes nothing; round0_min_steps itself splits it."""
    tiny = {**TINY, "train": {**TINY.get("train", {}), "round0_min_steps": 5}}
    arms = {
        **ARMS,
        "unverified": {"assemble": {"verified": False}},
        "longer_rounds": {"train": {"min_steps": 9}},
        "longer_round0": {"train": {"round0_min_steps": 9}},
    }
    p = plan({**tiny, "experiments": {"seeds": [0], "reference": "full", "arms": arms}})
    round0 = {r.arm: r.config["run"]["round0_dir"] for r in p.runs}
    assert round0["unverified"] == round0["longer_rounds"] == round0["full"] != round0["longer_round0"]
    assert len(p.owners) == 2
    # Without round0_min_steps, round 0 trains train.min_steps: a change of it splits round 0.
    p = plan(experiment_config({**ARMS, "longer": {"train": {"min_steps": 9}}}, seeds=(0,)))
    assert len({r.config["run"]["round0_dir"] for r in p.runs}) == 2


def test_experiment_config_errors_name_the_arm():
    with pytest.raises(ConfigError, match="experiments.arms.bad"):
        plan(experiment_config({**ARMS, "bad": {"train": {"lr": -1}}}))
    with pytest.raises(ConfigError, match="itself"):
        plan(experiment_config({**ARMS, "loop": {"train": {"match_steps_of": "loop"}}}))
    with pytest.raises(ConfigError, match="experiments.arms is empty"):
        plan({**TINY})
    with pytest.raises(ConfigError, match="experiments.reference"):
        plan({**TINY, "experiments": {"reference": "nope", "arms": ARMS}})


def test_interval_arithmetic_on_known_numbers():
    mean, sd, lo, hi = mean_interval([1.0, 2.0, 3.0])
    # t(0.975, 2 df) = 4.303: half width 4.303 * 1 / sqrt(3).
    assert (mean, sd) == (2.0, 1.0)
    assert math.isclose(lo, 2 - 4.303 / math.sqrt(3)) and math.isclose(hi, 2 + 4.303 / math.sqrt(3))
    assert mean_interval([5.0]) == (5.0, None, None, None)
    # Seeds that spread widely: the t interval (mean 72, half width 49.7) is cut at 100% for accuracies, at
    # -100 / +100 points for differences.
    spread = [90.0, 52.0, 74.0]
    half = 4.303 * 19.078784028338912 / math.sqrt(3)
    _, _, lo, hi = mean_interval(spread, bounded=True)
    assert math.isclose(lo, 72 - half) and hi == 100.0
    # Near 0, an accuracy's interval stops at 0; a difference's goes below it.
    assert mean_interval([5.0, 40.0, 10.0], bounded=True)[2] == 0.0
    assert mean_interval([5.0, 40.0, 10.0])[2] < -25
    assert mean_interval([-90.0, -10.0], bounded=False)[2] == -100.0


def test_comparison_pairs_differences_by_seed():
    """Seed effects that swamp the unpaired intervals cancel in the paired difference."""
    rows = []
    for seed, (ref, arm) in enumerate([(0.30, 0.34), (0.60, 0.64), (0.45, 0.50)]):
        for name, acc in (("ref", ref), ("arm", arm)):
            rows.append({"arm": name, "seed": seed, "suite": "s", "stage": "round_1", "final": True, "accuracy": acc,
                         "n": 100, "n_correct": int(100 * acc), "train_size": 1, "train_steps": 10,
                         "train_tokens": 100, "total_train_steps": 20, "total_train_tokens": 200})  # fmt: skip
    table = compare(pl.DataFrame(rows), "ref")
    arm = table.filter(arm="arm").row(0, named=True)
    diffs = [4.0, 4.0, 5.0]
    d_mean = sum(diffs) / 3
    d_sd = math.sqrt(sum((d - d_mean) ** 2 for d in diffs) / 2)
    assert math.isclose(arm["diff"], d_mean)
    assert math.isclose(arm["diff_ci_low"], d_mean - 4.303 * d_sd / math.sqrt(3))
    assert arm["diff_ci_low"] > 0  # paired: a consistent gain
    assert arm["ci_low"] < table.filter(arm="ref")["mean"][0]  # unpaired intervals overlap
    assert table.filter(arm="ref")["diff"][0] is None


# ---------------------------------------------------------------------------------------------------
# The whole experiment DAG


@pytest.mark.slow
def test_experiment_makes_shared_work_once_and_summarizes_every_arm_and_seed(finished_experiment):
    work, planned = finished_experiment
    # Per seed: one owner module makes the problems, the tiny model, the teacher's data and round 0, once.
    for rule in ("prepare", "make_tiny_model", "distill", "train", "assemble"):
        made = sum(n for name, n in planned.items() if name.startswith("round0_") and name.endswith(f"_{rule}"))
        assert made == 2, (rule, planned)
    for arm in ARMS:
        for seed in (0, 1):
            assert f"{arm}_s{seed}_prepare" not in planned and f"{arm}_s{seed}_distill" not in planned
            assert planned[f"{arm}_s{seed}_train"] == 1  # round 1 only
    summary = read_table(work / "results/experiments/summary.parquet", "experiment_summary")
    assert set(summary.select("arm", "seed").unique().iter_rows()) == {(a, s) for a in ARMS for s in (0, 1)}
    final = summary.filter(pl.col("final"))
    assert final["stage"].unique().to_list() == ["round_1"]
    # Compute is counted: 3 steps per round (tiny config), rounds 0 and 1.
    assert final["total_train_steps"].to_list() == [6] * 4 and (final["total_train_tokens"] > 0).all()
    # Arms of one seed share base and round 0: the same scores.
    r0 = summary.filter(stage="round_0").group_by("seed").agg(pl.col("accuracy").n_unique())
    assert r0["accuracy"].to_list() == [1, 1]
    text = (work / "results/experiments/comparison.md").read_text()
    assert "| full | round_1 |" in text and "| no_reflection | round_1 |" in text and "reference" in text
    assert (work / "results/experiments/accuracy.png").stat().st_size > 0
    report = (work / "report.html").read_text()
    assert "accuracy per arm with its interval" in report and "MathSE experiment" in report
    # no_reflection reflects nothing; full does.
    assert not list((work / "results/experiments/arms/no_reflection").glob("seed_*/round_*/reflections.parquet"))
    assert len(list((work / "results/experiments/arms/full").glob("seed_*/round_*/reflections.parquet"))) == 2


NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


@pytest.mark.slow
def test_orm_feedback_never_states_the_reference_answer(finished_experiment):
    """The paper's ORM prompt forbids giving the answer away: every WRONG verdict of the run, without the
    path's own words it quotes and the step numbers, holds no number equal to the reference answer."""
    work, _ = finished_experiment
    answers = {}
    for p in (work / "results/experiments/shared").glob("seed_*/data_*/*.parquet"):
        if p.name in ("seed.parquet", "pool.parquet"):
            answers.update(dict(read_table(p, "problem").select("problem_id", "answer").iter_rows()))
    checked = 0
    for path in (work / "results/experiments/arms").glob("*/seed_*/round_*/judgments.parquet"):
        for r in read_table(path, "judgment").filter(status="WRONG").iter_rows(named=True):
            text = r["error_analysis"] + " " + r["improvement_suggestion"]
            text = re.sub(r"'[^']*'", "", text)  # the path's own words
            text = re.sub(r"(?i)steps? \d+( to \d+)?|after step \d+", "", text)
            assert answers[r["problem_id"]] not in NUMBER.findall(text), (r["problem_id"], text)
            checked += 1
    assert checked > 0


@pytest.mark.slow
def test_added_arms_run_alone_final_reflection_stage_and_equal_compute(finished_experiment, tmp_path):
    """Seed 0 only: the finished experiment's runs of both seeds stay on disk, the added arms run for one."""
    work = tmp_path / "experiment"
    shutil.copytree(finished_experiment[0], work, symlinks=True)
    arms = {
        **ARMS,
        "final_reflection": {"reflection": {"schedule": "final"}},
        "equal_compute": {"run": {"rounds": 0}, "train": {"match_steps_of": "full"}},
    }
    (work / "experiment.yaml").write_text(yaml.safe_dump(experiment_config(arms, seeds=(0,))))
    planned = planned_jobs(run_experiment(work, "-n"))
    finished = {f"{arm}_s0_" for arm in ARMS}
    assert not [name for name in planned if any(name.startswith(p) for p in finished)], planned
    # The finished owners' round 0 and data are not redone; equal_compute gets a round 0 of its own.
    assert not [name for name in planned if name.endswith(("_prepare", "_make_tiny_model"))], planned
    assert planned["final_reflection_s0_train"] == 2  # round 1 and the final reflection stage
    run_experiment(work)
    arm = work / "results/experiments/arms/final_reflection/seed_0"
    summary = read_table(arm / "summary.parquet", "summary")
    assert sorted(summary["stage"].unique()) == ["base", "round_0", "round_1", "round_2"]
    # Algorithm 1: no reflection in rounds 1..R; the extra stage trains on D_R plus all rounds' reflections.
    assert not (arm / "round_1/reflections.parquet").exists() and not (arm / "round_2/rollouts.parquet").exists()
    d_r = read_table(arm / "round_1/train.parquet", "train")
    final = read_table(arm / "round_2/train.parquet", "train")
    reflections = read_table(arm / "round_2/reflections.parquet", "reflection")
    assert set(reflections["source_round"].unique()) == {1} and reflections.height > 0
    assert "reflect" not in d_r["origin"].to_list()
    assert final.height == d_r.height + int(reflections["accepted"].sum())
    # Equal compute: round 0 alone, trained as many steps as the whole `full` run of the same seed.
    exp = read_table(work / "results/experiments/summary.parquet", "experiment_summary")
    full = exp.filter(arm="full", seed=0, final=True)["total_train_steps"][0]
    matched = exp.filter(arm="equal_compute", seed=0, final=True)
    assert matched["stage"][0] == "round_0" and matched["total_train_steps"][0] == full == 6
    assert not list((work / "results/experiments/arms/equal_compute").glob("seed_1"))
    text = (work / "results/experiments/comparison.md").read_text()
    assert "| final_reflection | round_2 |" in text and "| equal_compute | round_0 |" in text


def test_matched_steps_reads_the_other_runs_summary(tmp_path):
    from mathse.experiments import matched_steps

    rows = [("synthetic", "base", 0), ("synthetic", "round_0", 5), ("synthetic", "round_1", 7),
            ("other", "round_0", 5), ("other", "round_1", 7)]  # fmt: skip
    summary = pl.DataFrame(
        [
            {
                "suite": s,
                "stage": st,
                "accuracy": 0.5,
                "n": 2,
                "n_correct": 1,
                "train_size": 1,
                "train_steps": k,
                "train_tokens": 10 * k,
            }
            for s, st, k in rows
        ]
    )
    write_table(summary, tmp_path / "summary.parquet", "summary")
    assert matched_steps(str(tmp_path / "summary.parquet")) == 12  # per stage, not per suite


@pytest.mark.slow
def test_experiment_rules_get_the_profiles_cluster_resources(tmp_path):
    """The modules' rules are renamed ({arm}_s{seed}_train, ...); the SLURM profile's per-rule resources reach
    them as they reach the rules of one run, so an experiment runs on a cluster with the same profile."""
    (tmp_path / "experiment.yaml").write_text(yaml.safe_dump(experiment_config(ARMS)))
    proc = run_experiment(tmp_path, "-n", "--profile", str(ROOT / "profiles/slurm"))
    blocks = {b.split("\n")[0].strip().rstrip(":"): b for b in (proc.stdout + proc.stderr).split("rule ")[1:]}
    for name in ("full_s0_train", "no_reflection_s1_rollout", "full_s1_evaluate"):
        block = blocks[name]
        assert "slurm_partition=gpu" in block and "gpu=" in block, block
    assert "gpu=8" in blocks["full_s0_train"]
    prepare = next(b for n, b in blocks.items() if n.startswith("round0_") and n.endswith("_prepare"))
    assert "slurm_partition=cpu" in prepare
    # (--cores 2 caps the profile's 32 and 8 threads at 2)
    assert "threads: 2" in blocks["full_s0_train"] and "threads: 2" in blocks["no_reflection_s1_rollout"]
    # profiles/cpu (make experiments): the model rules of every module take one thread (a dry run prints no
    # thread count for one), so two run side by side; no gpu token makes them wait for each other.
    proc = run_experiment(tmp_path, "-n", "--profile", str(ROOT / "profiles/cpu"))
    blocks = {b.split("\n")[0].strip().rstrip(":"): b for b in (proc.stdout + proc.stderr).split("rule ")[1:]}
    for name in ("full_s0_train", "no_reflection_s1_rollout"):
        assert "threads:" not in blocks[name] and "gpu=" not in blocks[name], blocks[name]


def test_round_training_settings():
    from mathse.config import TrainConfig
    from mathse.training.train import plan_steps, round_train_config

    cfg = TrainConfig(min_steps=200, round0_min_steps=1000, num_train_epochs=1, per_device_train_batch_size=16)
    assert plan_steps(100, round_train_config(cfg, 0)) == 1000
    assert plan_steps(100, round_train_config(cfg, 1)) == 200
    assert plan_steps(100, round_train_config(TrainConfig(min_steps=200), 0)) == 200
    assert plan_steps(10**6, round_train_config(cfg, 0, matched_steps=1400)) == 1400  # exactly, even with more data


def test_the_core_preset_runs_are_runs_of_the_full_preset():
    """config/presets/paper_core.yaml is six arms of paper_ablations.yaml, and that ten of paper_ablations.yaml
    followed by orm_judge_arms.yaml: each of their runs has the same config (so the same folders and round-0
    groups), and `make experiments` with the larger set after the smaller runs only the arms it left out."""
    from mathse.experiments import deep_merge

    base = yaml.safe_load((ROOT / "config/config.yaml").read_text())

    def runs(*presets: str) -> dict:
        raw = base  # merged in order, as Snakemake merges several --configfile files
        for preset in presets:
            raw = deep_merge(raw, yaml.safe_load((ROOT / "config/presets" / preset).read_text()))
        return {(r.arm, r.seed): r.config for r in plan(raw).runs}

    core, full = runs("paper_core.yaml"), runs("paper_ablations.yaml")
    assert len(core) == 18 and len(full) == 30
    assert {k: full[k] for k in core} == core
    # orm_judge_arms.yaml adds the two arms judged by a learned ORM to the full preset.
    with_orm = runs("paper_ablations.yaml", "orm_judge_arms.yaml")
    assert {k: with_orm[k] for k in full} == full
    assert {arm for arm, _ in with_orm.keys() - full.keys()} == {"orm_judge", "orm_judge_sampled"}
