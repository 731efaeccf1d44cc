"""Training state per process: one process vs DDP vs FSDP, measured in gloo processes on the CPU.

What each process holds after its first optimiser step (weights, gradients, AdamW state) is read from the
train marker (`state_mib_per_process`), so the figure is the trainer's own accounting of the tensors it keeps,
not an estimate; the weights each layout trains are compared with the single process's.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import polars as pl
from safetensors.torch import load_file

from mathse.artifacts import write_table
from mathse.bench import MID_SIZE
from mathse.bench.training import mixed_rows
from mathse.config import DataConfig, TinyModelConfig, TrainConfig
from mathse.modeling import TRAINED_MARKER
from mathse.training.tiny_model import make_tiny_model
from mathse.training.train import launch


def _train_table(folder: Path, n: int, seed: int) -> Path:
    """A train artifact of `mixed_rows` problems (responses of 10 to 60 tokens)."""
    extra = dict(origin="distill", round_added=0, sample_idx=0, model="bench", backend="bench", prompt_version="v1")
    rows = [{**row, **extra} for row in mixed_rows(n, (10, 60), folder, seed)]
    path = folder / "train.parquet"
    write_table(pl.DataFrame(rows), path, "train")
    return path


def bench_sharding(shape: TinyModelConfig = MID_SIZE, processes: int = 2, steps: int = 2, seed: int = 0) -> dict:
    """Full fine-tuning of the same steps in one process, then `processes` DDP and FSDP processes."""
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_tiny_model(str(tmp / "model"), shape, DataConfig(), seed=seed)
        train_path = _train_table(tmp, 4 * processes, seed)
        weights = {}
        for layout, n in (("one process", 1), ("ddp", processes), ("fsdp", processes)):
            cfg = TrainConfig(
                method="full", lr=1e-4, num_train_epochs=1, min_steps=steps, max_steps=steps, save_steps=0,
                per_device_train_batch_size=2, global_batch_size=2 * processes, num_processes=n,
                distributed="fsdp" if layout == "fsdp" else "ddp",
            )  # fmt: skip
            out = tmp / layout.replace(" ", "_")
            launch(dict(train_path=str(train_path), base_path=str(tmp / "model"), init_weights=None,
                        out_dir=str(out), round_idx=0, seed=seed, prompt_version="v1"), cfg)  # fmt: skip
            info = json.loads((out / TRAINED_MARKER).read_text())
            weights[layout] = load_file(out / "model.safetensors")
            runs[layout] = {"processes": n, "state_mib": info["state_mib_per_process"]}
    one = weights["one process"]
    for layout, run in runs.items():
        w = weights[layout]
        run["max_weight_diff"] = max((w[k] - one[k]).abs().max().item() for k in one)
        run["share"] = run["state_mib"] / runs["one process"]["state_mib"]
    params = sum(t.numel() for t in one.values())
    return {"params": params, "steps": steps, "runs": runs}


def section(result: dict) -> list[str]:
    """BENCHMARKS.md lines for this figure."""
    lines = [
        "## Training state per process: one process, DDP, FSDP",
        f"Full fine-tuning of the {result['params'] / 1e6:.1f}M model, float32 weights and AdamW, "
        f"{result['steps']} steps of the same global batch in each layout",
        "(gloo on the CPU). State: weights, gradients and AdamW moments this process holds after its first step",
        "(its shards under FSDP). Weight diff: largest difference from the single process's trained weights.",
        "",
        "| layout | processes | state MiB per process | share of one process's | max weight diff |",
        "|---|---:|---:|---:|---:|",
    ]
    for layout, r in result["runs"].items():
        lines.append(
            f"| {layout} | {r['processes']} | {r['state_mib']:.1f} | {r['share']:.2f} | {r['max_weight_diff']:.1e} |"
        )
    lines.append("")
    return lines
