"""Crashes lose nothing: SIGKILL at failpoints, then a rerun finishes with identical artifacts."""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_workflow import ROOT, SNAKEMAKE, write_config

from mathse.artifacts import read_table, same_artifact


def run_killed(code: str, failpoint: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run python `code` in its own session with a failpoint set; it must die of SIGKILL."""
    env = {**os.environ, "MATHSE_FAILPOINT": failpoint}
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=env, capture_output=True, text=True,
        start_new_session=True,
    )  # fmt: skip
    assert proc.returncode == -9, f"expected SIGKILL at {failpoint}, got {proc.returncode}:\n{proc.stderr[-3000:]}"
    return proc


TRAIN = """
    import sys
    from mathse.config import TrainConfig
    from mathse.logs import setup_logging
    from mathse.training.train import train
    setup_logging("{log}")
    cfg = TrainConfig(num_train_epochs=1, min_steps=12, max_steps=12, save_steps=4, per_device_train_batch_size=4)
    train("{data}", "{model}", None, "{out}", cfg, round_idx=0, seed=0, prompt_version="v1")
"""


@pytest.fixture(scope="module")
def train_table(tmp_path_factory, data_dir):
    from test_model import _train_table

    path = tmp_path_factory.mktemp("train") / "train.parquet"
    _train_table(data_dir, path)
    return path


@pytest.mark.slow  # three processes that each load torch and the model
def test_killed_training_resumes_from_its_checkpoint_to_identical_weights(tmp_path, train_table, tiny_model_dir):
    fmt = dict(data=train_table, model=tiny_model_dir)
    code = TRAIN.format(out=tmp_path / "a", log=tmp_path / "a.log", **fmt)
    subprocess.run([sys.executable, "-c", textwrap.dedent(code)], check=True, capture_output=True)
    run_killed(TRAIN.format(out=tmp_path / "b", log=tmp_path / "b1.log", **fmt), "train_checkpoint@2", tmp_path)
    assert not (tmp_path / "b").exists(), "a killed job must not leave an output folder"
    assert (tmp_path / "b.ckpt/state.pt").exists()
    subprocess.run(
        [sys.executable, "-c", textwrap.dedent(TRAIN.format(out=tmp_path / "b", log=tmp_path / "b2.log", **fmt))],
        check=True, capture_output=True,
    )  # fmt: skip
    assert "resumed from the checkpoint at step 8/12" in (tmp_path / "b2.log").read_text()
    a, b = load_file(tmp_path / "a/model.safetensors"), load_file(tmp_path / "b/model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not (tmp_path / "b.ckpt").exists(), "the checkpoint is removed once the weights are saved"


ROLLOUT = """
    from mathse.config import ModelConfig, RolloutConfig
    from mathse.logs import setup_logging
    from mathse.generation.rollout import run_rollout
    setup_logging("{log}")
    run_rollout("{pool}", None, "{out}", ModelConfig(path="{model}"),
                RolloutConfig(num_samples=2, max_new_tokens=8, shard_size=2), round_idx=1, seed=0)
"""


@pytest.mark.slow
def test_killed_rollout_redoes_only_unfinished_shards(tmp_path, data_dir, tiny_model_dir):
    fmt = dict(pool=data_dir / "pool.parquet", model=tiny_model_dir)
    code = ROLLOUT.format(out=tmp_path / "a.parquet", log=tmp_path / "a.log", **fmt)
    subprocess.run([sys.executable, "-c", textwrap.dedent(code)], check=True, capture_output=True)
    out = tmp_path / "b.parquet"
    run_killed(ROLLOUT.format(out=out, log=tmp_path / "b1.log", **fmt), "rollout_shard@2", tmp_path)
    assert not out.exists()
    assert len(list(tmp_path.glob("b.parquet.shards/*/shard_*.parquet"))) == 2
    code = ROLLOUT.format(out=out, log=tmp_path / "b2.log", **fmt)
    subprocess.run([sys.executable, "-c", textwrap.dedent(code)], check=True, capture_output=True)
    n_shards = (read_table(data_dir / "pool.parquet", "problem").height + 1) // 2
    assert f"2 of {n_shards} shards were already done" in (tmp_path / "b2.log").read_text()
    assert filecmp.cmp(tmp_path / "a.parquet", out, shallow=False), "resumed rollouts differ from uninterrupted ones"
    assert not (tmp_path / "b.parquet.shards").exists()


@pytest.mark.slow
def test_shards_of_a_changed_input_are_never_resumed(tmp_path, data_dir, tiny_model_dir):
    """A rollout killed after two shards, then its problem file edited in place: every shard is redone on the new
    content (the stale ones are removed) and the result equals an uninterrupted run on the edited file."""
    import polars as pl

    from mathse.artifacts import write_table

    pool = tmp_path / "pool.parquet"
    pool.write_bytes((data_dir / "pool.parquet").read_bytes())
    out = tmp_path / "b.parquet"
    fmt = dict(pool=pool, model=tiny_model_dir, out=out)
    run_killed(ROLLOUT.format(log=tmp_path / "b1.log", **fmt), "rollout_shard@2", tmp_path)
    stale = sorted(tmp_path.glob("b.parquet.shards/*/shard_*.parquet"))
    assert len(stale) == 2
    stale_rows = pl.concat([pl.read_parquet(p) for p in stale])
    # Same path, the questions changed: only the content tells the two files apart.
    problems = read_table(pool, "problem")
    edited = problems.with_columns(pl.col("question") + " Show each step.")
    assert edited.height == problems.height and not edited["question"].equals(problems["question"])
    write_table(edited, str(pool), "problem")
    code = ROLLOUT.format(log=tmp_path / "b2.log", **fmt)
    subprocess.run([sys.executable, "-c", textwrap.dedent(code)], check=True, capture_output=True)
    log, n_shards = (tmp_path / "b2.log").read_text(), (problems.height + 1) // 2
    assert "resumed" not in log and f"shard 1/{n_shards} done" in log and f"shard 2/{n_shards} done" in log
    assert not any(p.exists() for p in stale), "stale shards are removed"
    fresh = ROLLOUT.format(log=tmp_path / "c.log", **{**fmt, "out": tmp_path / "c.parquet"})
    subprocess.run([sys.executable, "-c", textwrap.dedent(fresh)], check=True, capture_output=True)
    assert filecmp.cmp(tmp_path / "c.parquet", out, shallow=False), "the stale shards leaked into the result"
    # The edit changes those shards' rows, so a resumed stale shard could not have passed the comparison.
    first = read_table(out, "rollout").head(stale_rows.height)
    assert not first["response"].equals(stale_rows["response"])


EVALUATE = """
    from mathse.config import EvalConfig, ModelConfig
    from mathse.logs import setup_logging
    from mathse.generation.rollout import run_evaluate
    setup_logging("{log}")
    run_evaluate("{suite}", None, "{out}", ModelConfig(path="{model}"), EvalConfig(max_new_tokens=8, shard_size=2),
                 suite="synthetic", stage="base", seed=0, prompt_version="v1")
"""


@pytest.mark.slow
def test_killed_evaluation_resumes_from_its_shards_to_identical_scores(tmp_path, data_dir, tiny_model_dir):
    fmt = dict(suite=data_dir / "bench/synthetic.parquet", model=tiny_model_dir)
    code = EVALUATE.format(out=tmp_path / "a.parquet", log=tmp_path / "a.log", **fmt)
    subprocess.run([sys.executable, "-c", textwrap.dedent(code)], check=True, capture_output=True)
    out = tmp_path / "b.parquet"
    run_killed(EVALUATE.format(out=out, log=tmp_path / "b1.log", **fmt), "evaluate_shard@1", tmp_path)
    assert not out.exists()
    assert len(list(tmp_path.glob("b.parquet.shards/*/shard_*.parquet"))) == 1
    subprocess.run(
        [sys.executable, "-c", textwrap.dedent(EVALUATE.format(out=out, log=tmp_path / "b2.log", **fmt))],
        check=True, capture_output=True,
    )  # fmt: skip
    n_shards = (read_table(fmt["suite"], "problem").height + 1) // 2
    assert f"resumed, 1 of {n_shards} shards were already done" in (tmp_path / "b2.log").read_text()
    assert filecmp.cmp(tmp_path / "a.parquet", out, shallow=False), "resumed scores differ from uninterrupted ones"
    assert not (tmp_path / "b.parquet.shards").exists()


def test_killed_write_leaves_no_artifact(tmp_path):
    code = """
        import polars as pl
        from mathse.artifacts import empty, write_table
        write_table(empty("summary"), "out/summary.parquet", "summary")
    """
    run_killed(code, "write_summary@1", tmp_path)
    assert not (tmp_path / "out/summary.parquet").exists()


def snakemake(workdir: Path, *args: str, failpoint: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ}
    env.pop("MATHSE_FAILPOINT", None)
    if failpoint:
        env["MATHSE_FAILPOINT"] = failpoint
    cmd = [*SNAKEMAKE, "--directory", str(workdir), "--configfile", str(workdir / "config.yaml"),
           "--profile", str(ROOT / "profiles/local"), "--cores", "2", *args]  # fmt: skip
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, start_new_session=True)


@pytest.mark.slow
def test_demo_killed_in_rollout_judge_and_train_resumes_to_identical_artifacts(tmp_path, tiny_run):
    """Also the determinism check: two runs of the same config give byte-identical parquet files. The reference
    is the session's uninterrupted tiny run (tests/config_tiny.yaml: rollouts and evaluations in shards of 4,
    a training checkpoint every 2 steps), made by the same profile and core count."""
    ref, work = tiny_run, tmp_path / "killed"
    write_config(work)
    res = work / "results"
    # Each kill lands inside the named rule: its artifact is missing, its partial work is kept aside.
    checks = {
        "rollout_shard@1": lambda: (
            not (res / "round_1/rollouts.parquet").exists()
            and len(list(res.glob("round_1/rollouts.parquet.shards/*/shard_*.parquet"))) == 1
        ),
        "write_judgment@1": lambda: (
            not (res / "round_1/judgments.parquet").exists()
            and len(list(res.glob("round_1/.judgments.parquet.*.tmp"))) == 1
        ),
        "train_checkpoint@1": lambda: (
            not (res / "round_1/adapter").exists() and (res / "round_1/adapter.ckpt/state.pt").exists()
        ),
    }
    for fp, check in checks.items():
        proc = snakemake(work, failpoint=fp)
        assert proc.returncode == -9, f"{fp}: {proc.returncode}\n{proc.stderr[-3000:]}"
        assert check(), f"{fp}: the kill did not land where expected"
        snakemake(work, "--unlock")
    proc = snakemake(work)
    assert proc.returncode == 0, proc.stderr[-5000:]
    assert "resumed, 1 of" in (work / "logs/rollout/round_1.log").read_text()
    assert "resumed from the checkpoint" in (work / "logs/train/round_1.log").read_text()
    parquet = sorted(p.relative_to(ref) for p in ref.rglob("*.parquet"))
    assert len(parquet) > 20
    assert sorted(p.relative_to(work) for p in work.rglob("*.parquet")) == parquet
    differing = [str(p) for p in parquet if not same_artifact(ref / p, work / p)]
    assert not differing, f"artifacts differ after kill and resume: {differing}"
    for r in (0, 1, 2):
        a = load_file(ref / f"results/round_{r}/adapter/model.safetensors")
        b = load_file(work / f"results/round_{r}/adapter/model.safetensors")
        assert all(torch.equal(a[k], b[k]) for k in a), f"round {r} weights differ"
    assert not list(work.rglob("*.shards")) and not list(work.rglob("*.ckpt")) and not list(work.rglob(".*.tmp"))
