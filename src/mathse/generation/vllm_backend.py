"""The `vllm` generation backend: the same contract as mathse.generation.hf_backend.generate_paths, on vllm.LLM.

Prompts are the same text as the transformers backend's (the processor's chat template); images go in as
vLLM multimodal inputs. Each problem is one request with `n = num_samples` and its own seed derived from
(seed_key, problem index), so a rerun of the same shard gives the same paths. A round's peft LoRA adapter is
served through vLLM's LoRA support, or merged once into full weights (`vllm.lora: merge`).
vLLM is imported here only, so the main environment never needs it (its environment: envs/vllm.yaml, or
scripts/setup_vllm_cpu.sh for a CPU venv).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mathse.config import VllmConfig
from mathse.generation.hf_backend import cut_at_stop, derive_seed
from mathse.modeling import chat_text, load_image, prompt_text

log = logging.getLogger(__name__)

ENV_HINT = (
    "the `vllm` backend needs vLLM in the rule's environment: run with `--software-deployment-method conda` "
    "(envs/vllm.yaml), or on CPU build .venv-vllm with `bash scripts/setup_vllm_cpu.sh` and run from it"
)
# vLLM accepts only these max_lora_rank values; an adapter's r is rounded up to the next one.
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


def require_vllm() -> None:
    """Fail early, with the environment to use, when vLLM cannot be imported."""
    try:
        import vllm  # noqa: F401
    except Exception as err:  # an ImportError, or a broken install failing inside vllm's own imports
        raise RuntimeError(f"cannot import vllm ({type(err).__name__}: {err}); {ENV_HINT}") from None


@dataclass
class VllmEngine:
    """A vllm.LLM plus the LoRA request (None: plain weights) that every generate call carries."""

    llm: Any
    lora: Any = None
    model_path: str = ""
    info: dict = field(default_factory=dict)


def is_adapter(weights: str | None) -> bool:
    return weights is not None and (Path(weights) / "adapter_config.json").exists()


def lora_rank(adapter: str) -> int:
    cfg = json.loads((Path(adapter) / "adapter_config.json").read_text())
    ranks = [int(cfg.get("r", 8)), *(int(v) for v in (cfg.get("rank_pattern") or {}).values())]
    need = max(ranks)
    for r in LORA_RANKS:
        if r >= need:
            return r
    raise ValueError(f"{adapter}: LoRA rank {need} exceeds vLLM's largest max_lora_rank {LORA_RANKS[-1]}")


def _auto_class(path: str):
    """The transformers auto class of a checkpoint: a VLM (the pipeline's backbones) or a text-only LM."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText

    multimodal = getattr(AutoConfig.from_pretrained(path), "vision_config", None) is not None
    return AutoModelForImageTextToText if multimodal else AutoModelForCausalLM


def merged_weights(base_path: str, adapter: str, dtype: str) -> str:
    """`{adapter}_merged/`: the adapter merged into the base weights (peft merge_and_unload), written once.

    Written to a temporary folder and renamed, so a concurrent job never loads a half-written model; it is
    rebuilt when the adapter is newer than it (a retrained round).
    """
    from peft import PeftModel

    from mathse.modeling import DTYPES, load_processor

    out = Path(f"{str(adapter).rstrip('/')}_merged")
    stamp = out / "mathse_merged_from.json"
    newest = max(p.stat().st_mtime for p in Path(adapter).iterdir())
    if stamp.exists() and stamp.stat().st_mtime >= newest:
        return str(out)
    tmp = out.with_name(f"{out.name}.tmp{time.time_ns()}")
    model_class = _auto_class(base_path)
    base = model_class.from_pretrained(base_path, dtype=DTYPES[dtype])
    model = PeftModel.from_pretrained(base, adapter).merge_and_unload()
    model.save_pretrained(tmp)
    load_processor(base_path).save_pretrained(tmp)
    (tmp / stamp.name).write_text(json.dumps({"base": base_path, "adapter": str(adapter)}) + "\n")
    if out.exists():  # stale: made from an older adapter
        shutil.rmtree(out, ignore_errors=True)
    try:
        tmp.rename(out)
    except OSError:  # a concurrent job (rollout and evaluate of one round) renamed the same merge there first
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("merged LoRA adapter %s into %s", adapter, out)
    return str(out)


def load_engine(
    base_path: str,
    weights: str | None,
    dtype: str,
    cfg: VllmConfig,
    *,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    seed: int = 0,
) -> VllmEngine:
    """A vLLM engine for the base model or a round's weights (peft adapter folder or full weights)."""
    require_vllm()
    from vllm import LLM

    kwargs: dict[str, Any] = dict(
        dtype=dtype,
        tensor_parallel_size=cfg.tensor_parallel_size,
        gpu_memory_utilization=cfg.gpu_memory_utilization,
        enforce_eager=cfg.enforce_eager,
        seed=seed,
    )
    if cfg.max_model_len is not None:
        kwargs["max_model_len"] = cfg.max_model_len
    from vllm.platforms import current_platform

    if current_platform.is_cpu():
        # A prompt prefilled in chunks makes vLLM rewind its request's seeded generator, which a CPU generator
        # cannot do ("CPU Generator does not use offset"): on CPU every prompt is prefilled whole.
        kwargs["enable_chunked_prefill"] = False
    model_path, lora = base_path, None
    if is_adapter(weights):
        if cfg.lora == "merge":
            model_path = merged_weights(base_path, weights, dtype)
        else:
            from vllm.lora.request import LoRARequest

            kwargs.update(enable_lora=True, max_lora_rank=lora_rank(weights), max_loras=1)
            lora = LoRARequest(Path(weights).name or "adapter", 1, str(Path(weights).resolve()))
    elif weights is not None:
        if not (Path(weights) / "config.json").exists():
            raise FileNotFoundError(f"{weights}: neither a peft adapter nor full weights")
        model_path = weights
    # Multimodal settings only for a model with a vision part (vLLM rejects them for text-only models).
    if _auto_class(model_path).__name__ == "AutoModelForImageTextToText":
        kwargs["limit_mm_per_prompt"] = {"image": cfg.max_images_per_prompt}
        pixels = {k: v for k, v in (("min_pixels", min_pixels), ("max_pixels", max_pixels)) if v is not None}
        if pixels:
            kwargs["mm_processor_kwargs"] = pixels
    log.info("vLLM engine: %s%s %s", model_path, f" + LoRA {weights}" if lora else "", kwargs)
    llm = LLM(model=model_path, **kwargs)
    return VllmEngine(llm=llm, lora=lora, model_path=model_path, info=kwargs)


def generate_paths(
    engine: VllmEngine,
    processor,
    problems: list[dict],
    *,
    num_samples: int = 1,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    max_new_tokens: int = 64,
    batch_size: int = 32,
    prompt_version: str = "v1",
    seed_key: tuple[int, ...] = (0,),
    desc: str = "generate",
    stop: Sequence[str] = (),
    keep_ids: bool = False,
) -> list[dict]:
    """generation.generate_paths on vLLM: one row per (problem, sample), in problem order.

    `stop`: vLLM's stop strings (matched on its detokenized text); the string is cut from the response.

    `batch_size` is accepted for the same signature and unused: vLLM schedules all requests itself.
    Greedy decoding (`do_sample=False`) is temperature 0; sampling uses temperature and top_p, no top_k.
    """
    from vllm import SamplingParams

    del batch_size
    tokenizer = getattr(processor, "tokenizer", processor)  # a VLM's processor, or a text model's tokenizer
    requests, params = [], []
    for i, p in enumerate(problems):
        n_images = len(p["images"])
        text = (
            chat_text(processor, p["prompt"], n_images)
            if "prompt" in p
            else prompt_text(processor, p["question"], n_images, prompt_version)
        )
        request: dict[str, Any] = {"prompt": text}
        if n_images:
            request["multi_modal_data"] = {"image": [load_image(path) for path in p["images"]]}
        requests.append(request)
        sampling = dict(temperature=temperature, top_p=top_p, top_k=0) if do_sample else dict(temperature=0.0)
        params.append(
            SamplingParams(
                n=num_samples,
                max_tokens=max_new_tokens,
                seed=derive_seed(*seed_key, i),
                # Decoded below as the hf backend does (vLLM's text drops a cut UTF-8 tail); stop strings need
                # vLLM's own detokenizer to be matched.
                detokenize=bool(stop),
                stop=list(stop) or None,
                **sampling,
            )
        )
    if not requests:
        return []
    t0 = time.perf_counter()
    outputs = engine.llm.generate(requests, params, lora_request=engine.lora, use_tqdm=False)
    rows, total_tokens = [], 0
    for p, out in zip(problems, outputs, strict=True):
        for completion in sorted(out.outputs, key=lambda c: c.index):
            n = len(completion.token_ids)
            total_tokens += n
            response, _ = cut_at_stop(tokenizer.decode(completion.token_ids, skip_special_tokens=True), stop)
            row = {
                "problem_id": p["problem_id"],
                "sample_idx": completion.index,
                "response": response,
                "num_tokens": n,
                # "stop": an end-of-sequence token (as the hf backend's `finished`); "length": max_tokens.
                "finished": completion.finish_reason == "stop",
            }
            if keep_ids:
                row["token_ids"] = list(completion.token_ids)
            rows.append(row)
    elapsed = time.perf_counter() - t0
    log.info(
        "%s: %d paths, %d tokens in %.1f s (%.0f tokens/s, vllm)",
        desc,
        len(rows),
        total_tokens,
        elapsed,
        total_tokens / max(elapsed, 1e-9),
    )
    return rows
