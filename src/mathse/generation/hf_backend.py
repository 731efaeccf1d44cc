"""Batched generation with transformers: k sampled paths (or one greedy path) per problem.

Prompts are sorted by length so batches pad little; each prompt's image is processed once and expanded to
its k samples by `num_return_sequences`. Sampling is seeded per batch from integer tuples, so the same
config gives the same paths on CPU.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence

import numpy as np
import torch

from mathse.logs import Progress
from mathse.modeling import chat_text, load_image, prompt_text

log = logging.getLogger(__name__)


def derive_seed(*key: int) -> int:
    """A 31-bit seed from an integer tuple (never from hash(str), which varies between processes)."""
    return int(np.random.SeedSequence([int(k) for k in key]).generate_state(1)[0] & 0x7FFFFFFF)


def batches(items: Sequence, size: int) -> Iterable[Sequence]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """The text before the first stop string (stripped), and whether one was there."""
    hits = [text.find(x) for x in stop if x in text]
    return (text[: min(hits)] if hits else text).strip(), bool(hits)


@torch.inference_mode()
def generate_paths(
    model,
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
    """Generate `num_samples` paths for each problem (dicts with problem_id, question, images).

    A problem dict with a `prompt` key is asked that text as is instead of the solver prompt (the ORM).
    `stop`: strings that end a path as EOS does (the string itself is not kept, as in vLLM and OpenAI).
    `processor`: a VLM's processor, or a text model's tokenizer (problems without images).

    Returns one dict per (problem, sample): problem_id, sample_idx, response, num_tokens, finished, and with
    `keep_ids` the generated token ids (`token_ids`, for comparing backends token for token).
    """
    tokenizer = getattr(processor, "tokenizer", processor)
    tokenizer.padding_side = "left"
    eos_ids = model.generation_config.eos_token_id
    eos_ids = set(eos_ids if isinstance(eos_ids, list) else [eos_ids])
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else next(iter(eos_ids))

    texts = [
        chat_text(processor, p["prompt"], len(p["images"]))
        if "prompt" in p
        else prompt_text(processor, p["question"], len(p["images"]), prompt_version)
        for p in problems
    ]
    lengths = [len(tokenizer(t)["input_ids"]) for t in texts]
    order = sorted(range(len(problems)), key=lambda i: (lengths[i], i))

    rows: dict[int, list[dict]] = {}
    total_tokens, t0 = 0, time.perf_counter()
    bar = Progress(len(problems) * num_samples, desc, "paths", log)
    for b, idx in enumerate(batches(order, batch_size)):
        images = [[load_image(path) for path in problems[i]["images"]] for i in idx]
        # A text model's tokenizer takes no `images` argument.
        with_images = {"images": images} if any(images) else {}
        inputs = processor(text=[texts[i] for i in idx], return_tensors="pt", padding=True, **with_images).to(
            model.device
        )
        torch.manual_seed(derive_seed(*seed_key, b))
        gen_kwargs = dict(max_new_tokens=max_new_tokens, num_return_sequences=num_samples, pad_token_id=pad_id)
        if stop:
            gen_kwargs.update(stop_strings=list(stop), tokenizer=tokenizer)
        if do_sample:
            gen_kwargs.update(do_sample=True, temperature=temperature, top_p=top_p, top_k=0)
        else:
            gen_kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        out = model.generate(**inputs, **gen_kwargs)
        new = out[:, inputs["input_ids"].shape[1] :]
        for j, seq in enumerate(new.tolist()):
            i = idx[j // num_samples]
            n, finished = len(seq), False
            for pos, tok in enumerate(seq):
                if tok in eos_ids:
                    n, finished = pos + 1, True
                    break
            response, stopped = cut_at_stop(tokenizer.decode(seq[:n], skip_special_tokens=True), stop)
            if stopped:
                finished = True
                while n and seq[n - 1] == pad_id:  # a sequence stopped by a stop string is padded after it
                    n -= 1
            row = {
                "problem_id": problems[i]["problem_id"],
                "sample_idx": j % num_samples,
                "response": response,
                "num_tokens": n,
                "finished": finished,
            }
            if keep_ids:
                row["token_ids"] = seq[:n]
            rows.setdefault(i, []).append(row)
            total_tokens += n
        bar.update(len(idx) * num_samples, tok_s=f"{total_tokens / (time.perf_counter() - t0):.0f}")
    bar.close()
    elapsed = time.perf_counter() - t0
    log.info(
        "%s: %d paths, %d tokens in %.1f s (%.0f tokens/s)",
        desc,
        len(problems) * num_samples,
        total_tokens,
        elapsed,
        total_tokens / max(elapsed, 1e-9),
    )
    return [r for i in range(len(problems)) for r in rows.get(i, [])]
