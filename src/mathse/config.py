"""The pipeline's configuration: one pydantic model per config section.

This module is the single source of truth. `workflow/schemas/config.schema.json` (read by Snakemake's
`validate`) and `config/defaults.yaml` (the documented defaults) are generated from it by
`python -m mathse.config --write`, and a test fails when they drift.
Fields that feed a library argument carry that argument's name (peft `LoraConfig`, torch `AdamW`).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

SCHEMA_PATH = Path("workflow/schemas/config.schema.json")
DEFAULTS_PATH = Path("config/defaults.yaml")
ORM_DIR = "{results_dir}/orm"


class Section(BaseModel):
    # Validation errors never echo inputs (a value given for api_key_env may be a pasted key); load_config
    # shows the others itself.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)


class RunConfig(Section):
    seed: int = Field(
        0, description="Master seed; every random choice derives its seed from (seed, ...) integer tuples."
    )
    rounds: int = Field(3, ge=0, description="Self-evolution rounds R after the distillation round 0.")
    results_dir: str = Field("results", description="Folder for all artifacts (relative to the working directory).")
    logs_dir: str = Field("logs", description="Folder for per-rule, per-round logs.")
    name: str | None = Field(
        None,
        description="The run's name in experiment trackers (train.report_to) and in the training metrics' `run` "
        "column (null: results_dir, which in an experiment names the arm and seed).",
    )
    data_dir: str | None = Field(
        None,
        description="Folder of the prepared problems (null: {results_dir}/data). An experiment points its runs of "
        "one seed at one folder, so that the problems are made once.",
    )
    round0_dir: str | None = Field(
        None,
        description="Folder holding the base and round_0 stages (null: results_dir). An experiment points the arms "
        "whose round-0 settings are equal at one folder, so that distillation and round 0 run once per seed.",
    )


class TinyModelConfig(Section):
    architecture: Literal["qwen2_vl", "internvl"] = Field(
        "qwen2_vl",
        description="Which real architecture the tiny model has: Qwen2-VL (Qwen2VLForConditionalGeneration, "
        "mrope, dynamic-resolution patches) or InternVL (InternVLForConditionalGeneration: ViT tiles, pixel "
        "shuffle, a Qwen2 decoder), each with the real processor, loaded through the Auto classes.",
    )
    hidden_size: int = Field(64, description="Text decoder width (Qwen2VLTextConfig.hidden_size).")
    intermediate_size: int = Field(128, description="Text MLP width (Qwen2VLTextConfig.intermediate_size).")
    num_hidden_layers: int = Field(2, description="Text decoder layers.")
    num_attention_heads: int = Field(4, description="Text attention heads; hidden_size / heads must be even.")
    num_key_value_heads: int = Field(2, description="Text key/value heads (grouped-query attention).")
    vision_depth: int = Field(2, description="Vision transformer blocks (Qwen2VLVisionConfig.depth).")
    vision_embed_dim: int = Field(64, description="Vision transformer width (Qwen2VLVisionConfig.embed_dim).")
    vision_num_heads: int = Field(4, description="Vision attention heads.")
    vocab_size: int = Field(400, description="Target size of the locally trained byte-level BPE tokenizer.")
    max_position_embeddings: int = Field(1024, description="Longest sequence the tiny model supports.")
    split_digits: bool = Field(
        True,
        description="The tokenizer spells numbers one digit per token, as Qwen2's does; false: whole numbers are "
        "tokens (the tiny ORM's own model, which compares a path's final answer with the reference answer).",
    )


class ModelConfig(Section):
    path: str = Field(
        "results/model/tiny",
        description="Local Hugging Face folder of the backbone (any AutoModelForImageTextToText checkpoint "
        "with an AutoProcessor, e.g. Qwen2-VL-7B-Instruct). With make_tiny the pipeline creates it here.",
    )
    make_tiny: bool = Field(True, description="Create a tiny random Qwen2-VL-architecture model at `path` (demo).")
    name: str = Field("tiny-qwen2-vl", description="Short model name recorded in every row's provenance.")
    tiny: TinyModelConfig = Field(default_factory=TinyModelConfig, description="Shape of the tiny model.")
    torch_dtype: Literal["float32", "bfloat16", "float16"] = Field(
        "float32", description="Weights dtype for loading (from_pretrained's dtype)."
    )
    min_pixels: int | None = Field(None, description="Override the processor's min_pixels (None: checkpoint's).")
    max_pixels: int | None = Field(None, description="Override the processor's max_pixels (None: checkpoint's).")


# The scoring rules each import format gets unless a suite names others.
FORMAT_SCORING = {"mathvista": "mathvista", "mathverse": "mathverse", "mathvision": "mathvision"}
PROCEDURAL_SUITE = "synthetic"


class ProblemSource(Section):
    format: Literal["mathvista", "mathverse", "mathvision", "mathvl", "jsonl"] = Field(
        description="Published format of the files (see docs/benchmarks.md): MathVista testmini/test parquet, "
        "MathVerse testmini, MATH-Vision, MathVL-test style JSONL, or the generic JSONL/parquet."
    )
    path: str = Field(
        description="Local file, folder or glob as downloaded, relative to the working directory "
        "(nothing is fetched), e.g. benchmarks/MathVista/data/testmini-*.parquet."
    )
    where: dict[str, str] = Field(
        default_factory=dict,
        description="Keep only problems whose metadata has these values, e.g. {task: geometry problem solving} "
        "for MathVista's GPS subset, or {problem_version: Vision Only} for one MathVerse version.",
    )
    limit: int | None = Field(None, ge=1, description="Keep only the first N problems (null: all), for quick runs.")


class BenchmarkSource(ProblemSource):
    scoring: Literal["mathvista", "mathverse", "mathvision", "generic"] | None = Field(
        None,
        description="Whose official rules score this suite (null: the format's own; mathvl and jsonl: generic).",
    )

    @property
    def rules(self) -> str:
        return self.scoring or FORMAT_SCORING.get(self.format, "generic")


class DataConfig(Section):
    source: Literal["procedural", "files"] = Field(
        "procedural",
        description="Where the training problems (seed part and pool) come from: the embedded procedural generator, "
        "or local files in any import format (`files`: data.pool_sources and data.seed_sources).",
    )
    pool_sources: dict[str, ProblemSource] = Field(
        default_factory=dict,
        description="source `files`: training problem files, name -> {format, path, where, limit} (e.g. GeoQA+, "
        "Geometry3K, ChartQA as generic JSONL with images). Problem ids become `name/id`. Without seed_sources, "
        "n_seed of them (drawn with run.seed) form the seed part and the rest the pool.",
    )
    seed_sources: dict[str, ProblemSource] = Field(
        default_factory=dict,
        description="source `files`: problem files that form the seed part the teacher solves in round 0 "
        "(then every pool_sources problem is in the pool).",
    )
    families: list[Literal["chart", "geometry", "counting"]] = Field(
        default_factory=lambda: ["chart", "geometry", "counting"],
        min_length=1,
        description="Procedural problem families mixed evenly: bar-chart arithmetic, rectangle perimeter "
        "from labelled sides, counting dots in rows.",
    )
    n_seed: int = Field(120, ge=1, description="Problems in the seed part that the teacher solves in round 0.")
    n_pool: int = Field(600, ge=0, description="Problems in the pool that the model solves in rounds 1..R.")
    n_test: int = Field(150, ge=1, description="Problems in each held-out test suite.")
    image_size: int = Field(56, ge=28, description="Side of the square problem images in pixels.")
    max_value: int = Field(9, ge=2, le=99, description="Largest number drawn in a problem.")
    benchmarks: dict[str, BenchmarkSource] = Field(
        default_factory=dict,
        description="Benchmark suites imported from local files: suite name -> {format, path, scoring, where, "
        "limit}. Each is written to results/data/bench/{suite}.parquet and scored by its benchmark's rules when "
        "listed in eval.suites.",
    )
    contamination: Literal["off", "report", "exclude"] = Field(
        "report",
        description="Benchmark problems whose image (same pixels) or normalised question also appears in the seed "
        "part or pool: listed in the import log and results/data/bench/{suite}.contamination.jsonl (`report`), "
        "also removed from the suite (`exclude`), or not checked (`off`).",
    )


ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_KEY_PREFIXES = ("sk-", "sk_", "hf_", "gsk_", "xai-", "pk-", "rk-", "AIza", "ghp_", "github_pat_")


def looks_like_key(value: str) -> bool:
    """A secret rather than a variable's name: a known key prefix, or long, mixed case and digits."""
    digits = sum(c.isdigit() for c in value)
    mixed = any(c.islower() for c in value) and any(c.isupper() for c in value)
    return value.startswith(_KEY_PREFIXES) or (len(value) >= 24 and digits >= 4 and mixed)


class EndpointConfig(Section):
    """An OpenAI-compatible chat-completions endpoint (OpenAI, `vllm serve`, `python -m mathse.serve`)."""

    base_url: str = Field(
        "http://127.0.0.1:8000/v1", description="Endpoint root; requests go to {base_url}/chat/completions."
    )
    model: str = Field("gpt-4o", description="Model name sent in each request and recorded in every row.")
    api_key_env: str | None = Field(
        None,
        description="Name of the environment variable holding the API key (sent as a Bearer token), e.g. "
        "OPENAI_API_KEY; it must look like a variable's name (a value that looks like a key is refused, unshown). "
        "null: $OPENAI_API_KEY, sent only when base_url is OpenAI's (https://api.openai.com); a name: that "
        "variable's key, sent to base_url whatever its host. The key itself is never read from config nor written "
        "anywhere; it is stripped and must hold no space or newline; unset variable: no Authorization header.",
    )
    allow_insecure: bool = Field(
        False,
        description="Send the API key over plain http to a host that is not loopback (127.0.0.0/8, ::1, "
        "localhost). Without it such an endpoint with a key is refused when the client starts: use https.",
    )
    max_tokens: int = Field(1024, ge=1, description="Chat-completions max_tokens per request.")
    temperature: float = Field(0.0, ge=0, description="Chat-completions temperature (0: greedy).")
    timeout_s: float = Field(120.0, gt=0, description="Seconds to wait for one response before retrying.")
    max_retries: int = Field(5, ge=0, description="Retries per request on 429, 5xx, timeouts and bad bodies.")
    backoff_s: float = Field(1.0, ge=0, description="First retry delay; doubles on every retry.")
    max_backoff_s: float = Field(60.0, ge=0, description="Cap on one retry delay (also on a server's Retry-After).")
    max_concurrency: int = Field(8, ge=1, description="Requests in flight at once.")
    cache_dir: str = Field(
        "cache/api",
        description="Content-addressed cache of responses (key: hash of model and request body), so that a "
        "rerun or resumed job never pays twice for the same request. Shared by all rules and rounds.",
    )

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if looks_like_key(value.strip()):
            raise ValueError(
                "this looks like an API key, not the name of an environment variable holding one (not shown); "
                "put the key in a variable and give its name, e.g. OPENAI_API_KEY"
            )
        if not ENV_NAME_RE.fullmatch(value):
            raise ValueError(
                "must be an environment variable's name (letters, digits and _, not starting with a digit); "
                "the value given is not shown"
            )
        return value


class TeacherConfig(Section):
    backend: Literal["programmatic", "openai"] = Field(
        "programmatic",
        description="Teacher backend: `programmatic` writes exact solutions from the problems' traces; "
        "`openai` asks the model behind an OpenAI-compatible endpoint (`teacher.openai`).",
    )
    distill_pool: bool = Field(
        False,
        description="Round 0's teacher solves the pool too, not only the seed part (the paper's Table 4 'teacher "
        "only' arm: with run.rounds 0 and train.match_steps_of, the teacher's data against self-evolution's).",
    )
    error_rate: float = Field(
        0.1,
        ge=0,
        le=1,
        description="Programmatic teacher only: share of solutions with an arithmetic slip in the last step, "
        "so that the correctness filter on teacher output is exercised as with a real teacher.",
    )
    prompt_version: str = Field("v1", description="Version of the teacher's prompt templates (recorded per row).")
    openai: EndpointConfig = Field(
        default_factory=EndpointConfig, description="The endpoint of the `openai` backend (GPT-4o in the paper)."
    )


class VllmConfig(Section):
    """Engine settings of the `vllm` generation backend (rollout.backend, eval.backend, orm.hf.backend)."""

    tensor_parallel_size: int = Field(1, ge=1, description="vllm.LLM tensor_parallel_size: GPUs per engine.")
    gpu_memory_utilization: float = Field(
        0.9, gt=0, le=1, description="vllm.LLM gpu_memory_utilization: share of each GPU's memory vLLM may take."
    )
    max_model_len: int | None = Field(
        None, ge=1, description="vllm.LLM max_model_len: longest prompt + output in tokens (None: the model's)."
    )
    enforce_eager: bool = Field(
        False, description="vllm.LLM enforce_eager: no CUDA graphs (faster start, slower decoding)."
    )
    max_images_per_prompt: int = Field(
        4, ge=1, description="vllm.LLM limit_mm_per_prompt['image'] for multimodal models: most images one problem has."
    )
    lora: Literal["adapter", "merge"] = Field(
        "adapter",
        description="A round's peft LoRA adapter is served through vLLM's LoRA support over the base model "
        "(`adapter`: enable_lora, max_lora_rank from adapter_config.json) or merged once into full weights "
        "written next to the adapter ({adapter}_merged/) and loaded as a plain model (`merge`).",
    )


class RolloutConfig(Section):
    backend: Literal["hf", "vllm"] = Field(
        "hf",
        description="Generation backend: `hf` is batched transformers generate; `vllm` is vLLM's offline engine "
        "(settings in the `vllm` section; needs the vllm environment, envs/vllm.yaml).",
    )
    num_samples: int = Field(4, ge=1, description="Sampled reasoning paths k per remaining problem.")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature.")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling top_p.")
    max_new_tokens: int = Field(64, ge=1, description="Longest generated path in tokens.")
    stop: list[str] = Field(
        default_factory=list,
        description="Strings that end a path as EOS does, not kept in it (e.g. a model's next-turn marker), "
        "so endless paths stop early.",
    )
    batch_size: int = Field(32, ge=1, description="Prompts per generate call (each with num_samples sequences).")
    prompt_version: str = Field("v1", description="Version of the solver prompt template.")
    shard_size: int = Field(
        64,
        ge=1,
        description="Problems per resumable shard: a killed rollout job, rerun, redoes only unfinished shards.",
    )
    parallel_jobs: int = Field(
        1,
        ge=1,
        description="Split each round's rollout into this many jobs (rule rollout_part, one GPU each: on SLURM they "
        "run at once on several GPUs), each taking every n-th shard; rule rollout then joins them. The joined "
        "rollouts are the same as from one job.",
    )


class ReflectionConfig(Section):
    schedule: Literal["every_round", "final", "off"] = Field(
        "every_round",
        description="When the teacher rewrites wrong paths: every round (paper Eq. 2), once in the last round "
        "over all rounds' wrong paths (paper Algorithm 1), or never.",
    )
    feedback: Literal["orm", "teacher", "none"] = Field(
        "orm",
        description="What the teacher is told about a wrong path (paper Table 3): the ORM's error step and analysis "
        "(`orm`); nothing, as it must find the error itself first (`teacher`: the openai teacher gets a prompt "
        "that asks it to locate the error, the programmatic one compares the path with its own trace); or only "
        "the path (`none`: no error located at all).",
    )
    max_per_problem: int = Field(1, ge=1, description="Wrong paths rewritten per problem and round.")


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


class OrmHfConfig(Section):
    path: str | None = Field(
        None,
        description="Local Hugging Face folder of the ORM checkpoint (a VLM fine-tuned to judge paths); "
        "None: the backbone `model.path` (untrained as a judge: expect parse failures).",
    )
    weights: str | None = Field(
        None, description="A trained weights folder (peft adapter or full weights) loaded over `path`."
    )
    torch_dtype: Literal["float32", "bfloat16", "float16"] = Field(
        "float32", description="Weights dtype for loading (from_pretrained's dtype)."
    )
    batch_size: int = Field(16, ge=1, description="Paths per greedy generate call (hf backend).")
    backend: Literal["hf", "vllm"] = Field(
        "hf", description="Engine of the local ORM: transformers (`hf`) or vLLM (`vllm`, settings in `vllm`)."
    )


class OrmConfig(Section):
    backend: Literal["rule", "model"] = Field(
        "rule",
        description="Judge: `rule` checks the answer with math-verify and finds the first wrong step "
        "from the problem's reference trace; `model` asks a VLM for the paper's JSON verdict.",
    )
    transport: Literal["hf", "openai"] = Field(
        "hf",
        description="backend `model` only: run the ORM locally with transformers (`orm.hf`) or call an "
        "OpenAI-compatible endpoint (`orm.openai`).",
    )
    name: str = Field("orm", description="backend `model`: judge name recorded in the `judge` column.")
    prompt_version: str = Field("v1", description="Version of the ORM prompt template.")
    max_new_tokens: int = Field(256, ge=1, description="Longest verdict in tokens (hf transport).")
    hf: OrmHfConfig = Field(default_factory=OrmHfConfig, description="Local transformers ORM.")
    openai: EndpointConfig = Field(
        default_factory=lambda: EndpointConfig(max_tokens=256),
        description="Endpoint of the `openai` transport.",
    )
    trained: bool = Field(
        False,
        description="Train and evaluate an ORM in this run (rules orm_data, orm_train, orm_evaluate -> "
        f"{ORM_DIR}/), starting from the backbone; with backend `model` and transport `hf`, the judge "
        "is this trained ORM.",
    )
    train_correct_fraction: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Share of correct paths in the ORM's training and evaluation data (the rest are wrong "
        "paths with their error step and analysis; of sampled paths, the scarcer kind is all kept and the other "
        "drawn to this share); the paper does not state its proportion.",
    )
    own_model: bool = Field(
        True,
        description="With model.make_tiny: train the ORM from a tiny model of its own, made at "
        f"{ORM_DIR}/model with the shape `tiny` and a tokenizer that also learns the ORM's prompt and verdict "
        "words (JSON keys and analysis phrases become tokens, not letters); false, or with a real backbone: the "
        "ORM fine-tunes the backbone (model.path).",
    )
    tiny: TinyModelConfig = Field(
        default_factory=lambda: TinyModelConfig(vocab_size=700, split_digits=False),
        description="Shape and tokenizer of the ORM's own tiny model (own_model).",
    )
    paths: Literal["corrupted", "sampled"] = Field(
        "corrupted",
        description="Where the ORM's labelled paths come from: `sampled` - as the paper, paths the round-0 model "
        "samples (samples_per_problem per problem, rollout settings) on the seed part (training) and on the "
        "suites' problems (held out), judged against the reference and annotated by the teacher; `corrupted` - "
        "each problem's reference trace, right or with a misread value or a slip (paths_per_problem per problem).",
    )
    samples_per_problem: int = Field(
        8, ge=1, description="paths `sampled`: paths the round-0 model samples per problem."
    )
    final_line_examples: bool = Field(
        True,
        description="Also train on each training path's final line alone under the ORM prompt (no question, no "
        "steps) with its status-only verdict: the comparison of the path's answer with the reference that decides "
        "a verdict, in a few tokens. A small ORM from random weights learns it there and then finds it at the same "
        "place in whole paths; held-out paths are always whole.",
    )
    final_line_steps: int = Field(
        500,
        ge=0,
        description="With final_line_examples: train this many optimiser steps on the final-line rows alone first, "
        "then `train` on all rows from those weights (0: all rows from the start).",
    )
    paths_per_problem: int = Field(
        2,
        ge=1,
        description="paths `corrupted`: training paths per seed and pool problem, spread so that each problem's "
        "paths contrast right and wrong ones (at train_correct_fraction overall); the held-out paths are one per "
        "suite problem.",
    )
    train: TrainConfig = Field(
        default_factory=lambda: TrainConfig(
            num_train_epochs=1,
            min_steps=1500,
            max_steps=1500,
            per_device_train_batch_size=8,
            loss_weights={'"status": "(\\w)': 20.0, '"error_step": ([^,}]+)': 20.0},
        ),
        description="Fine-tuning the ORM (same fields as `train`); the verdict's first token and its error step "
        "(`null` on a right path) weigh 20 times the others (loss_weights): the step is where a small ORM's "
        "output branches on its own verdict, and the JSON that follows is only right if that branch is.",
    )

    def judging(self) -> dict:
        """The settings a judge reads (the judge and reflect rules' params): the backend, and for a model judge
        its transport, prompt and engine. How a trained ORM is trained is left out (its weights are an input of
        those rules), so a changed orm.train setting reruns no rule-ORM judge of a finished run."""
        if self.backend == "rule":
            return {"backend": "rule"}
        keys = {"backend", "transport", "name", "prompt_version", "max_new_tokens", "hf", "openai"}
        return self.model_dump(mode="json", include=keys)


class ExtractorConfig(Section):
    backend: Literal["rules", "openai"] = Field(
        "rules",
        description="How answers are taken from responses: each benchmark's rules only (`rules`), or also an LLM "
        "behind an OpenAI-compatible endpoint for the responses where the rules find no answer (`openai`, as the "
        "official MathVista/MathVerse scripts and lmms-eval do); its rows record the extractor in `extractor`.",
    )
    prompt_version: str = Field("v1", description="Version of the extraction prompt (mathse.prompts.EXTRACT_PROMPTS).")
    openai: EndpointConfig = Field(
        default_factory=lambda: EndpointConfig(model="gpt-4o-mini", max_tokens=32),
        description="The endpoint of the `openai` extractor.",
    )


class AnswerCheckConfig(Section):
    """Limits of every answer check: the rule ORM's, each suite's scorer, the reflection re-check, `mathse score`."""

    timeout_s: float = Field(
        5.0,
        gt=0,
        description="Seconds one answer check may take (one judged path, scored response or re-checked "
        "reflection, all its symbolic comparisons together). math-verify runs in a worker process that is "
        "stopped at the limit, from any thread or process; the row is then WRONG with `check: timeout` "
        "(judgments, scores, reflections, distilled). Answers with huge numbers (towers, factorials of "
        "large numbers, deep nesting) are refused before sympy sees them (`check: too_large`). Raise it if "
        "`check: timeout` shows on answers that should count.",
    )
    memory_mb: int = Field(
        1024,
        ge=64,
        description="Memory in MiB the answer-check worker may take beyond what it holds once started; a "
        "check past it is WRONG with `check: memory`.",
    )


class EvalConfig(Section):
    backend: Literal["hf", "vllm"] = Field(
        "hf", description="Generation backend for greedy evaluation: `hf` or `vllm` (as rollout.backend)."
    )
    suites: list[str] = Field(
        default_factory=lambda: ["synthetic"],
        min_length=1,
        description="Held-out suites scored at every stage (results/data/bench/{suite}.parquet), in table order: "
        "`synthetic` (procedural problems) and names declared in data.benchmarks.",
    )
    batch_size: int = Field(64, ge=1, description="Prompts per greedy generate call.")
    max_new_tokens: int = Field(64, ge=1, description="Longest generated answer in tokens.")
    stop: list[str] = Field(
        default_factory=list, description="Strings that end an answer as EOS does (as rollout.stop)."
    )
    shard_size: int = Field(64, ge=1, description="Problems per resumable shard of an evaluation job.")
    answer_extractor: ExtractorConfig = Field(
        default_factory=ExtractorConfig, description="Answer extraction where the benchmark's rules find none."
    )


class ExperimentsConfig(Section):
    """Arms x seeds of one experiment, run as one DAG by workflow/experiments.smk (`make experiments`)."""

    results_dir: str = Field(
        "results/experiments",
        description="Folder of the experiment: arms/{arm}/seed_{seed}/ (each a whole run), shared/ (work arms "
        "share), summary.parquet and comparison.md.",
    )
    logs_dir: str = Field("logs/experiments", description="Folder of the experiment's logs, laid out as results_dir.")
    seeds: list[int] = Field(
        default_factory=lambda: [0, 1, 2],
        min_length=1,
        description="run.seed of each repetition; every arm runs every seed, and arms that share a seed share its "
        "problems, tiny model and (when their settings are equal) round 0, so differences are paired by seed.",
    )
    reference: str | None = Field(
        None, description="The arm every other arm is compared with, paired by seed (null: the first arm)."
    )
    arms: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Arm name -> overrides of this config (same keys, deep-merged), e.g. no_reflection: "
        "{reflection: {schedule: 'off'}}. `train.match_steps_of` may name another arm (equal compute). Empty: "
        "no experiment (see config/presets/paper_ablations.yaml).",
    )


class Config(Section):
    """The whole pipeline configuration (config/config.yaml)."""

    run: RunConfig = Field(default_factory=RunConfig, description="Seeds, rounds and folders.")
    model: ModelConfig = Field(default_factory=ModelConfig, description="The backbone being improved.")
    data: DataConfig = Field(default_factory=DataConfig, description="Problem pool, seed part and test suites.")
    teacher: TeacherConfig = Field(
        default_factory=TeacherConfig, description="Teacher for distillation and reflection."
    )
    rollout: RolloutConfig = Field(default_factory=RolloutConfig, description="Sampling of reasoning paths.")
    orm: OrmConfig = Field(default_factory=OrmConfig, description="Outcome reward model (judge).")
    reflection: ReflectionConfig = Field(default_factory=ReflectionConfig, description="Teacher reflections.")
    assemble: AssembleConfig = Field(default_factory=AssembleConfig, description="Growing the training set.")
    train: TrainConfig = Field(default_factory=TrainConfig, description="Fine-tuning.")
    eval: EvalConfig = Field(default_factory=EvalConfig, description="Benchmark evaluation.")
    answer_check: AnswerCheckConfig = Field(
        default_factory=AnswerCheckConfig,
        description="Time and memory limits of answer checks (judge, scoring, reflection re-checks).",
    )
    vllm: VllmConfig = Field(
        default_factory=VllmConfig, description="The vLLM engine, for the rules whose backend is `vllm`."
    )
    experiments: ExperimentsConfig = Field(
        default_factory=ExperimentsConfig,
        description="Named arms over seeds, compared with intervals (workflow/experiments.smk; ignored by a "
        "single run).",
    )

    @model_validator(mode="after")
    def _check(self) -> Config:
        data = self.data
        if data.source == "files" and not (data.pool_sources or data.seed_sources):
            raise ValueError("data.source is `files` but data.pool_sources and data.seed_sources are empty")
        if data.source == "procedural" and (data.pool_sources or data.seed_sources):
            raise ValueError("data.pool_sources / data.seed_sources are set: also set data.source: files")
        for name in [*data.pool_sources, *data.seed_sources]:
            if not re.fullmatch(r"[A-Za-z0-9_\-]+", name):
                raise ValueError(f"data sources: a source name is letters, digits, _ or -, not {name!r}")
        if set(data.pool_sources) & set(data.seed_sources):
            raise ValueError("data.pool_sources and data.seed_sources share a name; give each source its own")
        for name in self.data.benchmarks:
            if name == PROCEDURAL_SUITE or not re.fullmatch(r"[A-Za-z0-9_\-]+", name):
                raise ValueError(
                    f"data.benchmarks.{name}: a suite name is letters, digits, _ or -, and not {PROCEDURAL_SUITE!r}"
                )
        known = [PROCEDURAL_SUITE, *self.data.benchmarks]
        unknown = [s for s in self.eval.suites if s not in known]
        if unknown:
            raise ValueError(f"eval.suites: {unknown} not declared; known suites: {known} (add it to data.benchmarks)")
        if len(set(self.eval.suites)) != len(self.eval.suites):
            raise ValueError(f"eval.suites: a suite is listed twice in {self.eval.suites}")
        exp = self.experiments
        for name in exp.arms:
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
                raise ValueError(f"experiments.arms: an arm name is a letter, then letters, digits or _, not {name!r}")
        if exp.reference is not None and exp.reference not in exp.arms:
            raise ValueError(f"experiments.reference: {exp.reference!r} is not an arm; arms: {list(exp.arms)}")
        if len(set(exp.seeds)) != len(exp.seeds):
            raise ValueError(f"experiments.seeds: a seed is listed twice in {exp.seeds}")
        return self

    def suite_scoring(self, suite: str) -> str:
        """The rules a suite is scored by: the pipeline's own for synthetic, else its benchmark's."""
        return "mathse" if suite == PROCEDURAL_SUITE else self.data.benchmarks[suite].rules


class ConfigError(ValueError):
    """A config that cannot run; the message names each bad key and why."""


def load_config(raw: dict[str, Any]) -> Config:
    """Validate a raw config dict (as Snakemake or yaml gives it), with a readable error."""
    try:
        return Config.model_validate(raw)
    except ValidationError as err:
        lines = []
        for e in err.errors():
            key = ".".join(str(p) for p in e["loc"]) or "<config>"
            # a value given for api_key_env may be a pasted key: never echoed
            got = "" if "api_key_env" in e["loc"] else f" (got {e.get('input')!r})"
            lines.append(f"  {key}: {e['msg']}{got}")
        raise ConfigError("invalid config:\n" + "\n".join(lines)) from None


def load_config_file(path: str | Path) -> Config:
    with open(path) as f:
        return load_config(yaml.safe_load(f) or {})


def json_schema() -> dict[str, Any]:
    schema = Config.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def defaults_yaml() -> str:
    """The defaults, each key preceded by its description as a comment."""
    lines = ["# Generated by `python -m mathse.config --write` from src/mathse/config.py. Do not edit."]

    def emit(model: type[BaseModel], values: dict[str, Any], indent: int) -> None:
        for name, field in model.model_fields.items():
            pad = "  " * indent
            lines.append(f"{pad}# {field.description}")
            value = values[name]
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                lines.append(f"{pad}{name}:")
                emit(annotation, value, indent + 1)
            else:
                dumped = yaml.safe_dump({name: value}, default_flow_style=True, width=1000).strip()
                lines.append(f"{pad}{dumped[1:-1] if dumped.startswith('{') else dumped}")

    emit(Config, Config().model_dump(mode="json"), 0)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["--write"]:
        SCHEMA_PATH.parent.mkdir(parents=True, exist_ok=True)
        SCHEMA_PATH.write_text(json.dumps(json_schema(), indent=2) + "\n")
        DEFAULTS_PATH.write_text(defaults_yaml())
        print(f"wrote {SCHEMA_PATH} and {DEFAULTS_PATH}")
        return 0
    if len(args) == 2 and args[0] == "--check":
        load_config_file(args[1])
        print(f"{args[1]}: valid")
        return 0
    print("usage: python -m mathse.config --write | --check CONFIG.yaml", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
