"""Rollout generation: our batched path (`generation.generate_paths`) vs one request at a time.

The batched path sorts prompts by length, processes each prompt's image once and expands it to its k samples
with `num_return_sequences`, and decodes a whole batch per forward pass with the KV cache. The baseline is
what a naive loop does: one `model.generate` call per (prompt, sample). Both run on the same prompts in one
process, alternated; greedy outputs are compared text for text, since batching must not change them.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import torch

from mathse.bench import MID_SIZE
from mathse.config import DataConfig, TinyModelConfig
from mathse.generation.hf_backend import generate_paths
from mathse.modeling import load_image, load_model, load_processor, prompt_text
from mathse.problems.data import generate_split
from mathse.training.tiny_model import make_tiny_model


@torch.inference_mode()
def generate_one_at_a_time(
    model, processor, problems: list[dict], *, num_samples: int, do_sample: bool, max_new_tokens: int, seed: int = 0
) -> list[dict]:
    """The naive baseline: one `model.generate` call per (problem, sample), no batching, no reuse."""
    tokenizer = processor.tokenizer
    eos_ids = model.generation_config.eos_token_id
    eos_ids = set(eos_ids if isinstance(eos_ids, list) else [eos_ids])
    rows = []
    for i, p in enumerate(problems):
        text = prompt_text(processor, p["question"], len(p["images"]), "v1")
        for k in range(num_samples):
            inputs = processor(text=[text], images=[[load_image(x) for x in p["images"]]], return_tensors="pt").to(
                model.device
            )
            torch.manual_seed(seed + i * num_samples + k)
            kwargs = (
                dict(do_sample=True, temperature=1.0, top_p=1.0, top_k=0)
                if do_sample
                else dict(do_sample=False, temperature=None, top_p=None, top_k=None)
            )
            out = model.generate(**inputs, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id, **kwargs)
            seq = out[0, inputs["input_ids"].shape[1] :].tolist()
            n = next((pos + 1 for pos, tok in enumerate(seq) if tok in eos_ids), len(seq))
            rows.append(
                {
                    "problem_id": p["problem_id"],
                    "sample_idx": k,
                    "response": tokenizer.decode(seq[:n], skip_special_tokens=True).strip(),
                    "num_tokens": n,
                }
            )
    return rows


def _problems(n: int, tmp: str) -> list[dict]:
    table = generate_split(0, "test", n, DataConfig(), Path(tmp) / "images")
    return table.select("problem_id", "question", "images").to_dicts()


def _timed(fn) -> tuple[list[dict], float, int]:
    t0 = time.perf_counter()
    rows = fn()
    elapsed = time.perf_counter() - t0
    return rows, elapsed, sum(r["num_tokens"] for r in rows)


def compare(
    model_dir: str,
    n_prompts: int,
    num_samples: int,
    *,
    max_new_tokens: int = 64,
    batch_size: int = 32,
    repeats: int = 1,
    tmp: str,
) -> dict:
    """Sampled k-path throughput (tokens/s) batched vs naive, and the greedy outputs of both compared."""
    processor = load_processor(model_dir)
    model = load_model(model_dir)
    problems = _problems(n_prompts, tmp)
    n_params = sum(p.numel() for p in model.parameters())

    greedy_batched = generate_paths(model, processor, problems, max_new_tokens=max_new_tokens, batch_size=batch_size)
    greedy_naive = generate_one_at_a_time(
        model, processor, problems, num_samples=1, do_sample=False, max_new_tokens=max_new_tokens
    )
    same = sum(a["response"] == b["response"] for a, b in zip(greedy_batched, greedy_naive, strict=True))

    batched_tps, naive_tps = [], []
    for r in range(repeats):  # alternate the two variants
        _, t, n = _timed(
            lambda r=r: generate_paths(
                model, processor, problems, num_samples=num_samples, do_sample=True,
                max_new_tokens=max_new_tokens, batch_size=batch_size, seed_key=(r,),
            )
        )  # fmt: skip
        batched_tps.append(n / t)
        _, t, n = _timed(
            lambda r=r: generate_one_at_a_time(
                model, processor, problems, num_samples=num_samples, do_sample=True,
                max_new_tokens=max_new_tokens, seed=r,
            )
        )  # fmt: skip
        naive_tps.append(n / t)
    return {
        "params": n_params,
        "prompts": n_prompts,
        "samples": num_samples,
        "max_new_tokens": max_new_tokens,
        "greedy_identical": same,
        "greedy_total": len(problems),
        "batched_tok_s": statistics.median(batched_tps),
        "naive_tok_s": statistics.median(naive_tps),
        "ratio": statistics.median(batched_tps) / statistics.median(naive_tps),
    }


def bench_generation(
    tiny_prompts: int = 64, mid_prompts: int = 16, num_samples: int = 4, repeats: int = 1, mid: bool = True
) -> dict:
    """Both model sizes; the mid-size model gets fewer prompts, as its naive loop takes minutes."""
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        shapes = {"tiny": (TinyModelConfig(), tiny_prompts)}
        if mid:
            shapes["mid"] = (MID_SIZE, mid_prompts)
        for name, (shape, n) in shapes.items():
            model_dir = str(Path(tmp) / name)
            make_tiny_model(model_dir, shape, DataConfig(), seed=0)
            results[name] = compare(model_dir, n, num_samples, repeats=repeats, tmp=tmp)
    load_image.cache_clear()
    return results


def section(result: dict) -> list[str]:
    """BENCHMARKS.md lines for this figure."""
    lines = [
        "## Rollout generation (batched vs one request at a time)",
        "Sampled paths (temperature 1, 64 new tokens at most) for k=4 samples per prompt: `generate_paths`",
        "(length-sorted batches of 32 prompts, image processed once per prompt, `num_return_sequences`, KV",
        "cache) vs one `model.generate` call per (prompt, sample). Greedy outputs of the two are compared text",
        "for text. Target: at least 8x on CPU for 64 prompts x 4 samples.",
        "",
        "| model | parameters | prompts x samples | batched tokens/s | naive tokens/s | ratio | greedy identical |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in result.items():
        lines.append(
            f"| {name} | {r['params'] / 1e6:.1f}M | {r['prompts']} x {r['samples']} | {r['batched_tok_s']:.0f} | "
            f"{r['naive_tok_s']:.0f} | {r['ratio']:.1f}x | {r['greedy_identical']}/{r['greedy_total']} |"
        )
    return lines + [""]
