"""CPU threads per job: training jobs of the tiny model one after another on every core, or side by side on one
core each (profiles/local vs profiles/cpu), in separate processes as Snakemake runs them."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mathse.config import DataConfig, TinyModelConfig

STEPS = 60  # optimiser steps per job
BATCH = 16  # the embedded default's per_device_train_batch_size


def _worker(model_dir: str, steps: int, threads: int) -> None:
    """One training job: `steps` AdamW steps on packed batches of the demo's shape (timed from outside, whole)."""
    import torch

    from mathse.bench.training import mixed_examples, train_steps
    from mathse.modeling import load_model, load_processor
    from mathse.training.packing import add_positions, pack

    torch.set_num_threads(threads)
    processor = load_processor(model_dir)
    torch.manual_seed(0)
    model = load_model(model_dir, trainable=True)
    model.config.use_cache = False
    with tempfile.TemporaryDirectory() as tmp:
        # Responses of 60-200 tokens: the length of the demo's solutions.
        examples = mixed_examples(processor, 4 * BATCH, (60, 200), Path(tmp), 0)
    add_positions(model, examples)
    pad_id = processor.tokenizer.pad_token_id or 0
    batches = [pack(examples[i : i + BATCH], pad_id) for i in range(0, len(examples), BATCH)]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    train_steps(model, optimizer, [batches[step % len(batches)] for step in range(steps)], packed=True)


def _jobs(model_dir: str, n_jobs: int, threads: int, side_by_side: bool, steps: int) -> float:
    """Wall seconds for n_jobs training jobs (process start and model load included, as in a pipeline)."""
    cmd = [sys.executable, "-m", "mathse.bench.threads", model_dir, str(steps), str(threads)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    if side_by_side:
        procs = [subprocess.Popen(cmd, env=env) for _ in range(n_jobs)]
        if any(p.wait() for p in procs):
            raise RuntimeError(f"a benchmark job failed: {' '.join(cmd)}")
    else:
        for _ in range(n_jobs):
            subprocess.run(cmd, env=env, check=True)
    return time.perf_counter() - t0


def bench_threads(steps: int = STEPS, repeats: int = 3) -> dict:
    """Median wall time of `cores` jobs each way, alternated; steps per second of the whole machine."""
    from mathse.training.tiny_model import make_tiny_model

    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp:
        make_tiny_model(f"{tmp}/model", TinyModelConfig(), DataConfig(), seed=0)
        times = {"after": [], "beside": []}
        for _ in range(repeats):
            times["after"].append(_jobs(f"{tmp}/model", cores, cores, False, steps))
            times["beside"].append(_jobs(f"{tmp}/model", cores, 1, True, steps))
    after, beside = statistics.median(times["after"]), statistics.median(times["beside"])
    return {"cores": cores, "steps": steps, "jobs": cores, "after_s": after, "beside_s": beside,
            "after_steps_per_s": cores * steps / after, "beside_steps_per_s": cores * steps / beside,
            "ratio": after / beside}  # fmt: skip


def section(r: dict) -> list[str]:
    return [
        "## CPU threads per job: jobs one after another on every core, or side by side on one core each",
        f"{r['jobs']} training jobs of the demo's tiny model ({r['steps']} AdamW steps each, packed batches of {BATCH} "
        "examples of 60-200 response tokens), each a process as Snakemake starts it (start and model load "
        f"included), on {r['cores']} cores: one after another with {r['cores']} threads each (profiles/local, whose "
        "gpu token runs model jobs one at a time) or all at once with one thread each (profiles/cpu, `make "
        "experiments`). Median of alternated repeats.",
        "",
        "| layout | wall s | steps/s (machine) | speed-up |",
        "|---|---:|---:|---:|",
        f"| one after another, {r['cores']} threads each | {r['after_s']:.1f} | {r['after_steps_per_s']:.1f} | 1.00x |",
        f"| side by side, 1 thread each | {r['beside_s']:.1f} | {r['beside_steps_per_s']:.1f} | {r['ratio']:.2f}x |",
        "",
    ]


if __name__ == "__main__":
    _worker(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
