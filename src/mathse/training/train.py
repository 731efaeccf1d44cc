"""Supervised fine-tuning on a round's training set: peft LoRA or full, AdamW with warmup and a schedule.

The loss is on the response tokens only (the prompt, image tokens included, is masked with -100), averaged
over a micro-batch's response tokens. The examples and micro-batches come from `mathse.training.batches` (right-padded
or packed, same loss and gradients); a killed job resumes from its `mathse.training.checkpoint.Checkpoint`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm import tqdm

from mathse.artifacts import read_table
from mathse.config import MONITORING, TrainConfig
from mathse.faults import failpoint
from mathse.generation.hf_backend import derive_seed
from mathse.modeling import TRAINED_MARKER, load_model, load_processor, write_marker
from mathse.shards import fingerprint, path_digest
from mathse.training import sharding
from mathse.training.batches import collate as collate  # `as`: re-exported, still imported from mathse.training.train
from mathse.training.batches import encode_examples, make_batch, weighted_loss
from mathse.training.batches import response_weights as response_weights
from mathse.training.checkpoint import Checkpoint
from mathse.training.metrics import open_metrics
from mathse.training.packing import add_positions, packed_attention

log = logging.getLogger(__name__)


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def enable_checkpointing(model) -> None:
    """Activation checkpointing on the transformers model (also under peft), non-reentrant.

    transformers then also makes the input embeddings' output require grad, which LoRA over frozen
    embeddings needs for the reentrant variant; the non-reentrant one works either way.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    base.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})


def accumulation(cfg: TrainConfig, world: int) -> int:
    """Forward passes per optimiser step and process, so that a step sees the global batch."""
    if not cfg.global_batch_size:
        return cfg.gradient_accumulation_steps
    per_pass = cfg.per_device_train_batch_size * world
    if cfg.global_batch_size % per_pass:
        raise ValueError(
            f"train.global_batch_size {cfg.global_batch_size} is not a multiple of train.per_device_train_batch_size "
            f"{cfg.per_device_train_batch_size} x {world} processes"
        )
    return cfg.global_batch_size // per_pass


def round_train_config(cfg: TrainConfig, round_idx: int, matched_steps: int | None = None) -> TrainConfig:
    """The training settings of one round: round 0 trains train.round0_min_steps when set, and exactly
    `matched_steps` when it matches another run's compute (train.match_steps_of)."""
    if round_idx == 0 and cfg.round0_min_steps is not None:
        cfg = cfg.model_copy(update={"min_steps": cfg.round0_min_steps})
    if matched_steps is not None:
        cfg = cfg.model_copy(update={"min_steps": matched_steps, "max_steps": matched_steps})
    return cfg


def plan_steps(n_examples: int, cfg: TrainConfig, world: int = 1) -> int:
    per_step = cfg.per_device_train_batch_size * accumulation(cfg, world) * world
    steps = math.ceil(math.ceil(n_examples * cfg.num_train_epochs) / per_step)
    steps = max(steps, cfg.min_steps)
    return min(steps, cfg.max_steps) if cfg.max_steps else steps


def train(
    train_path: str,
    base_path: str,
    init_weights: str | None,
    out_dir: str,
    cfg: TrainConfig,
    *,
    round_idx: int,
    seed: int,
    prompt_version: str,
    dtype: str = "float32",
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    run_name: str | None = None,
    job: str | None = None,
    logging_dir: str | None = None,
) -> dict:
    """The train rule: fine-tune from `init_weights` (None: the base model) on `train_path`, save to `out_dir`.

    Every optimiser step's metrics go to `out_dir`/train_metrics.parquet and to the trackers of
    cfg.report_to (`mathse.training.metrics`), as `job` (default round_<round_idx>) of run `run_name` (default
    out_dir); TensorBoard writes to `logging_dir` (default OUT.tensorboard).

    Under torch.distributed.run (WORLD_SIZE > 1) each process takes its share of every optimiser step's
    forward passes and DDP averages the gradients; the loss is scaled so that the step's gradient is the one
    a single process computes on the same global batch (the weights agree to float rounding).
    """
    from transformers import get_scheduler

    world, rank = int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("RANK", 0))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")

    dtype = cfg.torch_dtype or dtype
    table = read_table(train_path, "train")
    if table.is_empty():
        raise ValueError(f"{train_path}: the training set is empty; nothing to fine-tune on")
    processor = load_processor(base_path, min_pixels, max_pixels)
    torch.manual_seed(derive_seed(seed, round_idx, 1))
    lora_init = init_weights is not None and (Path(init_weights) / "adapter_config.json").exists()
    if cfg.method == "lora":
        model = load_model(base_path, init_weights, dtype, trainable=True)
        if not lora_init:
            from peft import LoraConfig, get_peft_model

            model = get_peft_model(model, LoraConfig(**cfg.lora.model_dump(), task_type="CAUSAL_LM"))
    else:
        # Full fine-tuning from a LoRA round merges the adapter first.
        model = load_model(base_path, init_weights, dtype, trainable=False)
        model.train(True)
    model.config.use_cache = False
    if cfg.gradient_checkpointing:
        enable_checkpointing(model)

    rows = table.sort("problem_id", "origin", "round_added", "sample_idx").to_dicts()
    t_enc = time.perf_counter()
    examples = encode_examples(processor, rows, prompt_version, cfg.loss_weights)
    if cfg.packing:
        add_positions(model, examples)
    log.info("encoded %d examples in %.1f s", len(examples), time.perf_counter() - t_enc)

    accum = accumulation(cfg, world)
    steps = plan_steps(len(examples), cfg, world)
    pad_id = processor.tokenizer.pad_token_id or 0
    device = next(model.parameters()).device
    device_type = device.type
    fsdp = world > 1 and cfg.distributed == "fsdp"
    if fsdp:
        root = sharding.shard(model, device)  # before the optimiser: it must hold the sharded parameters
        wrapped = model  # fully_shard wraps in place
    elif world > 1:
        from torch.nn.parallel import DistributedDataParallel

        # Frozen or unused parameters (a vision tower on text-only batches) must not stall the reduction.
        wrapped = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True
        )
    else:
        wrapped = model
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=cfg.betas)
    scheduler = get_scheduler(
        cfg.lr_scheduler_type,
        optimizer,
        num_warmup_steps=int(cfg.warmup_ratio * steps),
        num_training_steps=steps,
    )
    gen = torch.Generator().manual_seed(derive_seed(seed, round_idx, 2))
    order: list[int] = []
    losses: list[float] = []
    t0 = time.perf_counter()
    n_tokens = 0
    ckpt = Checkpoint(
        Path(f"{out_dir}.ckpt"),
        fingerprint(path_digest(train_path), path_digest(init_weights), path_digest(base_path),
                    cfg.model_dump(exclude=set(MONITORING)), round_idx, seed, prompt_version),
    )  # fmt: skip
    start, state_bytes = 0, 0
    state = ckpt.load()
    if state is not None:
        if fsdp:
            sharding.load_full_trainable_state(model, optimizer, state["params"], state["optimizer"])
        else:
            model.load_state_dict(state["params"], strict=False)
            optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        gen.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        order, losses, n_tokens, start = state["order"], state["losses"], state["n_tokens"], state["step"]
        log.info("resumed from the checkpoint at step %d/%d", start, steps)
    metrics = None
    if rank == 0:  # process 0 keeps the rows (totals over the processes) and talks to the trackers
        job = job or f"round_{round_idx}"
        metrics = open_metrics(
            ckpt.folder, cfg.report_to, cfg.metrics_flush_steps, cfg.model_dump(mode="json"), start=start,
            run_name=run_name or out_dir, job=job, round_idx=round_idx if job == f"round_{round_idx}" else None,
            processes=world, logging_dir=logging_dir or f"{out_dir}.tensorboard",
        )  # fmt: skip
    bar = tqdm(range(start, steps), desc=f"train round {round_idx}", unit="step", disable=None, mininterval=2)
    # Packed rows train with per-sequence attention (mathse.training.packing); the saved config keeps the original.
    with packed_attention(model) if cfg.packing else nullcontext():
        for step in bar:
            t_step = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            step_loss, step_tokens, step_positions = 0.0, 0, 0
            # Every process draws the whole step's examples in the same order and takes every world-th pass.
            passes = []
            for _ in range(accum * world):
                if len(order) < cfg.per_device_train_batch_size:
                    order += torch.randperm(len(examples), generator=gen).tolist()
                passes.append(order[: cfg.per_device_train_batch_size])
                order = order[cfg.per_device_train_batch_size :]
            mine = passes[rank::world]
            for j, idx in enumerate(mine):
                batch = to_device(make_batch([examples[i] for i in idx], pad_id, cfg), device)
                step_tokens += sum(len(examples[i]["input_ids"]) for i in idx)
                step_positions += batch["input_ids"].numel()  # padding included
                # Gradients are reduced across processes once, on the step's last pass; DDP averages them over
                # the processes, so each scales by its own passes only.
                last = j == len(mine) - 1
                if fsdp:  # reduce-scatter on the step's last pass; accumulate locally before it
                    model.set_requires_gradient_sync(last)
                with wrapped.no_sync() if world > 1 and not fsdp and not last else nullcontext():
                    with torch.autocast(device_type, dtype=torch.bfloat16, enabled=cfg.bf16):
                        weights = batch.pop("weights", None)
                        out = wrapped(**batch)
                        loss = out.loss if weights is None else weighted_loss(out.logits, batch["labels"], weights)
                        loss = loss / accum
                    if fsdp:
                        loss = sharding.with_root_gradients(loss, model, root)
                    loss.backward()
                step_loss += loss.item() / world
            if world > 1:
                totals = torch.tensor([step_loss, step_tokens, step_positions], dtype=torch.float64, device=device)
                dist.all_reduce(totals)
                step_loss, step_tokens, step_positions = totals[0].item(), int(totals[1].item()), int(totals[2].item())
            n_tokens += step_tokens
            grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            # FSDP: a DTensor; making it whole is a collective, so every process does it
            grad_norm = float(grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm)
            lr = optimizer.param_groups[0]["lr"]  # this step's; the scheduler moves it after the step
            optimizer.step()
            if step == start:  # what this process holds once AdamW has its state and gradients are in place
                state_bytes = sharding.local_state_bytes(model, optimizer)
            scheduler.step()
            losses.append(step_loss)
            if metrics is not None:
                now = time.perf_counter()
                metrics.step(
                    step + 1, loss=step_loss, lr=lr, grad_norm=grad_norm, tokens=step_tokens,
                    positions=step_positions, examples=len(passes) * cfg.per_device_train_batch_size,
                    epoch=(step + 1) * len(passes) * cfg.per_device_train_batch_size / len(examples),
                    seconds=now - t_step, wall=now - t0,
                )  # fmt: skip
            if step % 20 == 0 or step == steps - 1:
                recent = sum(losses[-20:]) / len(losses[-20:])
                bar.set_postfix(loss=f"{recent:.3f}")
                log.info("step %d/%d loss %.4f lr %.2e", step + 1, steps, recent, scheduler.get_last_lr()[0])
            if cfg.save_steps and (step + 1) % cfg.save_steps == 0 and step + 1 < steps:
                if fsdp:  # every process takes part in gathering the shards
                    trained, optim = sharding.full_trainable_state(model, optimizer)
                elif rank == 0:
                    trained = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
                    optim = optimizer.state_dict()
                if rank == 0:
                    metrics.flush()  # the rows up to the checkpoint are on disk before it is
                    ckpt.save(
                        {
                            "step": step + 1,
                            "params": trained,
                            "optimizer": optim,
                            "scheduler": scheduler.state_dict(),
                            "generator": gen.get_state(),
                            "torch_rng": torch.get_rng_state(),
                            "order": order,
                            "losses": losses,
                            "n_tokens": n_tokens,
                        }
                    )
                    failpoint("train_checkpoint")
    elapsed = time.perf_counter() - t0
    weights = sharding.full_weights(model) if fsdp else None
    if world > 1:
        dist.barrier()
        if rank != 0:  # process 0 writes the weights
            dist.destroy_process_group()
            return {}

    out = Path(out_dir)
    if out.exists():
        shutil.rmtree(out)
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(tmp, state_dict=weights)
    metrics.finish(tmp)
    if cfg.method == "full":
        processor.save_pretrained(tmp)
    info = {
        "round": round_idx,
        "method": cfg.method,
        "base_model": base_path,
        "init": init_weights or "base",
        "examples": len(examples),
        "steps": steps,
        "tokens": n_tokens,
        "processes": world,
        "distributed": cfg.distributed if world > 1 else "none",
        "final_loss": sum(losses[-20:]) / len(losses[-20:]),
        "train_seconds": round(elapsed, 2),
        "tokens_per_second": round(n_tokens / max(elapsed, 1e-9), 1),
        "state_mib_per_process": round(state_bytes / 2**20, 2),
    }
    write_marker(tmp, info)
    tmp.rename(out)
    ckpt.remove()
    log.info("trained %d steps on %d examples in %.1f s; saved to %s", steps, len(examples), elapsed, out_dir)
    if world > 1:
        dist.destroy_process_group()
    return info


def train_processes(cfg: TrainConfig) -> int:
    """How many training processes to start: train.num_processes, 0 meaning one per visible GPU."""
    return cfg.num_processes or max(1, torch.cuda.device_count())


def launch(kwargs: dict, cfg: TrainConfig, log_path: str | None = None) -> dict:
    """The train rule: train() in this process, or in train.num_processes DDP processes (torch.distributed.run).

    `kwargs` are train()'s other arguments (JSON-serialisable); process 0 appends to `log_path`.
    """
    n = train_processes(cfg)
    if n == 1:
        return train(**kwargs, cfg=cfg)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"kwargs": kwargs, "cfg": cfg.model_dump(mode="json"), "log": log_path}, f)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}",
           "-m", "mathse.training.train", f.name]  # fmt: skip
    log.info("training in %d processes: %s", n, " ".join(cmd))
    try:
        proc = subprocess.run(cmd)
    finally:
        os.unlink(f.name)
    if proc.returncode != 0:
        raise RuntimeError(f"distributed training ({n} processes) failed with exit code {proc.returncode}")
    return json.loads((Path(kwargs["out_dir"]) / TRAINED_MARKER).read_text())


def _worker(args_path: str) -> None:
    """One DDP process (`python -m mathse.training.train ARGS.json` under torch.distributed.run)."""
    from mathse.logs import setup_logging
    from mathse.modeling import setup_torch

    args = json.loads(Path(args_path).read_text())
    rank = int(os.environ.get("RANK", 0))
    setup_logging(args["log"] if rank == 0 else None, logging.INFO if rank == 0 else logging.WARNING, append=True)
    setup_torch(max(1, (os.cpu_count() or 1) // int(os.environ.get("WORLD_SIZE", 1))))
    train(**args["kwargs"], cfg=TrainConfig.model_validate(args["cfg"]))


if __name__ == "__main__":
    _worker(sys.argv[1])
