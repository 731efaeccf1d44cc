"""Growing the training set (`assemble`) and fine-tuning on it (`train`)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from mathse.config.base import Section


class AssembleConfig(Section):
    max_correct_per_problem: int = Field(
        1, ge=1, description="Distinct correct sampled paths per problem added to the training set."
    )
    verified: bool = Field(
        True,
        description="Keep only the sampled paths the judge calls correct (the method). false: unverified "
        "self-training, a control: each sampled problem adds its first paths whatever the verdict and leaves the "
        "pool (use with reflection.schedule: off).",
    )


class LoraSettings(Section):
    r: int = Field(16, ge=1, description="peft LoraConfig.r.")
    lora_alpha: int = Field(32, description="peft LoraConfig.lora_alpha.")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="peft LoraConfig.lora_dropout.")
    target_modules: list[str] | str = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        description="peft LoraConfig.target_modules (language model projections by default).",
    )


class TrainConfig(Section):
    method: Literal["lora", "full"] = Field(
        "full",
        description="`full` fine-tunes every weight (the tiny random model needs it); `lora` uses peft.",
    )
    init: Literal["base", "previous"] = Field(
        "previous",
        description="Round r starts from the base model (`base`) or from round r-1's weights (`previous`).",
    )
    lr: float = Field(2e-3, gt=0, description="torch AdamW lr (peak, after warmup).")
    weight_decay: float = Field(0.05, ge=0, description="torch AdamW weight_decay (paper: 0.05).")
    betas: tuple[float, float] = Field((0.9, 0.999), description="torch AdamW betas.")
    lr_scheduler_type: Literal["cosine", "linear", "constant_with_warmup"] = Field(
        "cosine", description="transformers get_scheduler name (paper: cosine)."
    )
    warmup_ratio: float = Field(0.05, ge=0, lt=1, description="Share of steps with linear warmup.")
    num_train_epochs: float = Field(3.0, gt=0, description="Epochs over the round's training set.")
    min_steps: int = Field(0, ge=0, description="Train at least this many optimiser steps per round.")
    round0_min_steps: int | None = Field(
        None,
        ge=0,
        description="Round 0 (distillation from the base model) trains at least this many steps instead of "
        "min_steps, so that later rounds can be short fine-tunes of a model that has learnt the task (null: "
        "min_steps).",
    )
    max_steps: int = Field(0, ge=0, description="Cap on optimiser steps per round (0: no cap).")
    match_steps_of: str | None = Field(
        None,
        description="results_dir of another run: round 0 trains for as many optimiser steps as that run's rounds "
        "together (read from its summary), for an equal-compute comparison; same schedule, one cosine cycle. "
        "null: off.",
    )
    per_device_train_batch_size: int = Field(16, ge=1, description="Sequences per forward pass.")
    gradient_accumulation_steps: int = Field(
        1, ge=1, description="Forward passes per optimiser step and process (ignored when global_batch_size is set)."
    )
    global_batch_size: int = Field(
        0,
        ge=0,
        description="Sequences per optimiser step over all processes (paper: 128), kept whatever the GPU count: "
        "accumulation = global_batch_size / (per_device_train_batch_size x processes), which must divide. "
        "0: per_device_train_batch_size x gradient_accumulation_steps x processes.",
    )
    num_processes: int = Field(
        1,
        ge=0,
        description="Training processes (DDP through torch.distributed.run, one per GPU; gloo on CPU). 0: one per "
        "visible GPU (a SLURM job's allocation), 1 on a machine without GPUs. The train rule launches them.",
    )
    distributed: Literal["ddp", "fsdp"] = Field(
        "ddp",
        description="How several training processes share the model. `ddp`: each holds a whole copy (LoRA, or "
        "full fine-tuning of models whose AdamW state fits one GPU). `fsdp`: weights, gradients and optimiser state "
        "are sharded across the processes (torch FSDP2, one unit per decoder layer), for full fine-tuning of 7B "
        "models. Both give a single process's weights on the same global batch. Ignored with one process.",
    )
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")
    packing: bool = Field(
        True,
        description="Pack each forward pass's sequences end to end without padding, each keeping its own "
        "(multimodal rope) positions and attending only within itself; same examples per step, same loss (mean "
        "over the response tokens) and gradients as right-padded batches (false), in fewer tokens. transformers "
        "finds the sequences from the position ids (Qwen2-VL family and decoders masked by masking_utils).",
    )
    packing_max_length: int = Field(
        0,
        ge=0,
        description="Longest packed row in tokens (never below the longest sequence); sequences are placed first-fit "
        "longest first. 0: the whole forward pass in one row (sdpa trains it sequence by sequence, flash-attention "
        "with its varlen kernels).",
    )
    gradient_checkpointing: bool = Field(
        False,
        description="Recompute activations in the backward pass (transformers activation checkpointing, "
        "use_reentrant false; works under peft LoRA): less memory for more compute.",
    )
    bf16: bool = Field(
        False,
        description="Run forward passes under torch.autocast in bfloat16, keeping float32 weights and optimiser "
        "state (as transformers TrainingArguments.bf16). `model.torch_dtype` instead sets the loaded weights' dtype.",
    )
    torch_dtype: Literal["float32", "bfloat16", "float16"] | None = Field(
        None,
        description="Weights dtype for training (None: `model.torch_dtype`). Full fine-tuning wants float32 master "
        "weights with `bf16: true` (AdamW updates of a 1e-5 lr vanish in bfloat16 weights), while rollouts and "
        "evaluation load `model.torch_dtype` (bfloat16). LoRA adapters are float32 over any base dtype.",
    )
    save_steps: int = Field(
        200,
        ge=0,
        description="Write a resumable checkpoint every this many optimiser steps (0: never); a killed train job, "
        "rerun, continues from the last one and ends with the same weights.",
    )
    report_to: list[Literal["tensorboard", "wandb", "mlflow", "trackio"]] = Field(
        default_factory=list,
        description="Experiment trackers that get each optimiser step's metrics (as transformers' report_to), the "
        "run named `{run.name}/round_<r>` (the ORM: `/orm`); each must be installed (`pip install mathse[wandb]`). "
        "TensorBoard writes event files under {run.results_dir}/tensorboard/, offline; wandb, mlflow and trackio "
        "read their own environment (WANDB_PROJECT, MLFLOW_TRACKING_URI, ...). Every job also writes the same "
        "metrics to train_metrics.parquet beside its weights. Empty: no tracker.",
    )
    metrics_flush_steps: int = Field(
        10,
        ge=1,
        description="Write the per-step metrics so far to disk every this many optimiser steps (and at every "
        "checkpoint), so that a running job can be watched.",
    )
    lora: LoraSettings = Field(default_factory=LoraSettings, description="LoRA settings (method: lora).")
    loss_weights: dict[str, float] = Field(
        default_factory=dict,
        description="Response tokens that weigh more in the loss: regular expression -> weight. The tokens that "
        "spell a match's first group (the whole match if it has none) count `weight` times in the micro-batch's "
        "weighted mean over response tokens; the others count once. Empty: the plain mean. The ORM weighs its "
        "verdict (`orm.train`), a single token that a long analysis would otherwise drown in the loss.",
    )

    @field_validator("report_to")
    @classmethod
    def _installed(cls, value: list[str]) -> list[str]:
        from importlib.util import find_spec

        missing = [name for name in value if find_spec(name) is None]
        if missing:
            extras = ",".join(missing)
            raise ValueError(
                f"tracker(s) {missing} not installed in this environment: pip install 'mathse[{extras}]' "
                "(or remove them from report_to)"
            )
        return value

    @model_validator(mode="after")
    def _check_weights(self) -> TrainConfig:
        for pattern, w in self.loss_weights.items():
            try:
                re.compile(pattern)
            except re.error as err:
                raise ValueError(f"loss_weights: {pattern!r} is not a regular expression ({err})") from None
            if w <= 0:
                raise ValueError(f"loss_weights: the weight of {pattern!r} must be positive, got {w}")
        return self


# Training settings that watch a run without changing its weights: left out of the train rules' params (a
# changed tracker reruns nothing) and of the checkpoint's key (a killed job still resumes).
MONITORING = ("report_to", "metrics_flush_steps")
