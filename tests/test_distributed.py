"""Training in several processes (torch.distributed.run, gloo on CPU), DDP or FSDP, gives a single process's weights."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import polars as pl
import pytest
import torch
from safetensors.torch import load_file
from test_model import _train_table, tiny_internvl_dir  # noqa: F401 (a fixture)

from mathse.artifacts import read_table, write_table
from mathse.config import TrainConfig
from mathse.training.train import accumulation, launch


def test_accumulation_keeps_the_global_batch():
    cfg = TrainConfig(per_device_train_batch_size=4, global_batch_size=128)
    assert [accumulation(cfg, n) for n in (1, 2, 4, 8)] == [32, 16, 8, 4]
    assert accumulation(TrainConfig(gradient_accumulation_steps=3), 2) == 3
    with pytest.raises(ValueError, match="global_batch_size 128 is not a multiple"):
        accumulation(TrainConfig(per_device_train_batch_size=3, global_batch_size=128), 2)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("method", "distributed", "model"),
    [
        ("full", "ddp", "tiny_model_dir"),
        ("lora", "ddp", "tiny_model_dir"),
        ("full", "fsdp", "tiny_model_dir"),
        ("lora", "fsdp", "tiny_model_dir"),
        ("full", "fsdp", "tiny_internvl_dir"),  # tied embeddings: saved once, as a single process saves them
    ],
)
def test_two_processes_train_the_weights_of_one(method, distributed, model, data_dir, tmp_path, request):
    model_dir = request.getfixturevalue(model)
    _train_table(data_dir, tmp_path / "train.parquet")
    # Some problems without images: a pass may skip the vision tower on one process and not on the other.
    table = read_table(tmp_path / "train.parquet", "train")
    text_only = pl.int_range(pl.len()) % 3 == 0
    table = table.with_columns(images=pl.when(text_only).then(pl.lit([], pl.List(pl.String))).otherwise("images"))
    write_table(table, tmp_path / "train.parquet", "train")
    weights, metrics = {}, {}
    for n in (1, 2):
        cfg = TrainConfig(
            method=method, lr=1e-3, num_train_epochs=1, min_steps=4, max_steps=4, per_device_train_batch_size=2,
            global_batch_size=4, num_processes=n, distributed=distributed, save_steps=0,
            lora={"lora_dropout": 0.0},  # dropout masks are drawn per process: equal weights need none
        )  # fmt: skip
        kwargs = dict(
            train_path=str(tmp_path / "train.parquet"), base_path=str(model_dir), init_weights=None,
            out_dir=str(tmp_path / f"out{n}"), round_idx=1, seed=0, prompt_version="v1",
        )  # fmt: skip
        info = launch(kwargs, cfg, str(tmp_path / f"train{n}.log"))
        assert info["processes"] == n and info["steps"] == 4
        assert info["distributed"] == (distributed if n > 1 else "none")
        name = "adapter_model.safetensors" if method == "lora" else "model.safetensors"
        weights[n] = load_file(tmp_path / f"out{n}" / name)
        metrics[n] = read_table(tmp_path / f"out{n}/train_metrics.parquet", "train_metrics")
    assert json.loads((tmp_path / "out2/mathse_train.json").read_text())["processes"] == 2
    # One row per step, written by process 0, with the whole step's totals: those of the single process.
    assert metrics[2]["step"].to_list() == [1, 2, 3, 4] and set(metrics[2]["processes"]) == {2}
    for col in ("tokens", "examples", "padding_share", "epoch", "learning_rate"):
        assert metrics[2][col].to_list() == metrics[1][col].to_list(), col
    for col in ("loss", "grad_norm"):
        torch.testing.assert_close(metrics[2][col].to_torch(), metrics[1][col].to_torch(), rtol=1e-4, atol=1e-6)
    assert weights[1].keys() == weights[2].keys()
    changed = 0
    for key, w in weights[1].items():
        torch.testing.assert_close(weights[2][key], w, rtol=1e-4, atol=1e-5)
    base = load_file(model_dir / "model.safetensors") if method == "full" else None
    if base is not None:
        changed = sum(not torch.equal(base[k], weights[1][k]) for k in base if k in weights[1])
        assert changed > 0


LAUNCH = """
    from mathse.config import TrainConfig
    from mathse.logs import setup_logging
    from mathse.training.train import launch
    setup_logging("{log}")
    cfg = TrainConfig(lr=1e-3, num_train_epochs=1, min_steps=6, max_steps=6, save_steps=2,
                      per_device_train_batch_size=2, global_batch_size=4, num_processes=2, distributed="fsdp")
    launch(dict(train_path="{data}", base_path="{model}", init_weights=None, out_dir="{out}", round_idx=1, seed=0,
                prompt_version="v1"), cfg, "{log}")
"""


def _launch(code: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a LAUNCH script in a fresh interpreter, its output kept (text)."""
    args = [sys.executable, "-c", textwrap.dedent(code)]
    return subprocess.run(args, capture_output=True, text=True, cwd=cwd, env=env)


@pytest.mark.slow
def test_killed_fsdp_training_resumes_from_its_gathered_checkpoint(tiny_model_dir, data_dir, tmp_path):
    """A 2-process FSDP job killed after a checkpoint resumes from it to the weights of an unbroken run."""
    _train_table(data_dir, tmp_path / "train.parquet")
    fmt = dict(data=tmp_path / "train.parquet", model=tiny_model_dir)
    proc = _launch(LAUNCH.format(out=tmp_path / "a", log=tmp_path / "a.log", **fmt), tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]  # the workers' errors reach stderr only
    assert "FSDP: 2 decoder layers" in (tmp_path / "a.log").read_text()
    # torch.distributed.run puts its workers in their own process group: the failpoint kills process 0's,
    # and the launcher reports the failure.
    env = {**os.environ, "MATHSE_FAILPOINT": "train_checkpoint@2"}
    proc = _launch(LAUNCH.format(out=tmp_path / "b", log=tmp_path / "b1.log", **fmt), tmp_path, env)
    assert proc.returncode != 0 and "failpoint train_checkpoint reached 2" in (tmp_path / "b1.log").read_text()
    assert not (tmp_path / "b").exists() and (tmp_path / "b.ckpt/state.pt").exists()
    proc = _launch(LAUNCH.format(out=tmp_path / "b", log=tmp_path / "b2.log", **fmt), tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "resumed from the checkpoint at step 4/6" in (tmp_path / "b2.log").read_text()
    a, b = load_file(tmp_path / "a/model.safetensors"), load_file(tmp_path / "b/model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_the_train_rule_of_a_snakemake_run_trains_in_fsdp_processes(tmp_path):
    """`train.num_processes: 2` with FSDP through the train rule; evaluation then loads the gathered weights."""
    from test_workflow import ROOT, snakemake, write_config

    write_config(tmp_path, run__rounds=0, train__num_processes=2, train__distributed="fsdp", train__global_batch_size=8)
    targets = [f"results/{stage}/scores/synthetic.parquet" for stage in ("base", "round_0")]
    snakemake(tmp_path, "--profile", str(ROOT / "profiles/local"), "--cores", "2", *targets)
    res = tmp_path / "results"
    info = json.loads((res / "round_0/adapter/mathse_train.json").read_text())
    assert info["processes"] == 2 and info["distributed"] == "fsdp" and info["steps"] == 3
    assert "FSDP: 2 decoder layers" in (tmp_path / "logs/train/round_0.log").read_text()
    # The saved weights are whole (gathered from the two shards), every tensor of the base at its shape, trained.
    base = load_file(res / "model/tiny/model.safetensors")
    trained = load_file(res / "round_0/adapter/model.safetensors")
    assert trained.keys() == base.keys() and all(trained[k].shape == base[k].shape for k in base)
    assert any(not torch.equal(trained[k], base[k]) for k in base)
    # Evaluation scored every test problem with those weights: its answers are not the base model's.
    before, after = (read_table(tmp_path / t, "score") for t in targets)
    assert after.height == before.height == 9 and set(after["stage"]) == {"round_0"}
    assert after["problem_id"].to_list() == before["problem_id"].to_list()
    assert not after["response"].equals(before["response"])
