"""Training in several DDP processes (torch.distributed.run, gloo on CPU) gives a single process's weights."""

import json

import pytest
import torch
from safetensors.torch import load_file
from test_model import _train_table

from mathse.config import TrainConfig
from mathse.train import accumulation, launch


def test_accumulation_keeps_the_global_batch():
    cfg = TrainConfig(per_device_train_batch_size=4, global_batch_size=128)
    assert [accumulation(cfg, n) for n in (1, 2, 4, 8)] == [32, 16, 8, 4]
    assert accumulation(TrainConfig(gradient_accumulation_steps=3), 2) == 3
    with pytest.raises(ValueError, match="global_batch_size 128 is not a multiple"):
        accumulation(TrainConfig(per_device_train_batch_size=3, global_batch_size=128), 2)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["full", "lora"])
def test_two_processes_train_the_weights_of_one(method, tiny_model_dir, data_dir, tmp_path):
    _train_table(data_dir, tmp_path / "train.parquet")
    weights = {}
    for n in (1, 2):
        cfg = TrainConfig(
            method=method, lr=1e-3, num_train_epochs=1, min_steps=4, max_steps=4, per_device_train_batch_size=2,
            global_batch_size=4, num_processes=n, save_steps=0,
            lora={"lora_dropout": 0.0},  # dropout masks are drawn per process: equal weights need none
        )  # fmt: skip
        kwargs = dict(
            train_path=str(tmp_path / "train.parquet"), base_path=str(tiny_model_dir), init_weights=None,
            out_dir=str(tmp_path / f"out{n}"), round_idx=1, seed=0, prompt_version="v1",
        )  # fmt: skip
        info = launch(kwargs, cfg, str(tmp_path / f"train{n}.log"))
        assert info["processes"] == n and info["steps"] == 4
        name = "adapter_model.safetensors" if method == "lora" else "model.safetensors"
        weights[n] = load_file(tmp_path / f"out{n}" / name)
    assert json.loads((tmp_path / "out2/mathse_train.json").read_text())["processes"] == 2
    assert weights[1].keys() == weights[2].keys()
    changed = 0
    for key, w in weights[1].items():
        torch.testing.assert_close(weights[2][key], w, rtol=1e-4, atol=1e-5)
    base = load_file(tiny_model_dir / "model.safetensors") if method == "full" else None
    if base is not None:
        changed = sum(not torch.equal(base[k], weights[1][k]) for k in base if k in weights[1])
        assert changed > 0
