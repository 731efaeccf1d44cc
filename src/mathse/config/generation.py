"""Who writes the reasoning paths: API endpoints, the teacher, the vLLM engine, rollouts and reflections."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from mathse.config.base import Section

ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_KEY_PREFIXES = ("sk-", "sk_", "hf_", "gsk_", "xai-", "pk-", "rk-", "AIza", "ghp_", "github_pat_")


def looks_like_key(value: str) -> bool:
    """A secret rather than a variable's name: a known key prefix, or long, mixed case and digits."""
    digits = sum(c.isdigit() for c in value)
    mixed = any(c.islower() for c in value) and any(c.isupper() for c in value)
    return value.startswith(_KEY_PREFIXES) or (len(value) >= 24 and digits >= 4 and mixed)


class EndpointConfig(Section):
    """An OpenAI-compatible chat-completions endpoint (OpenAI, `vllm serve`, `python -m mathse.generation.serve`)."""

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
