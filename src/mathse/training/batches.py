"""Training examples and micro-batches: encoding with response-only labels, right-padded collation, loss weights.

Each example is encoded once: the prompt through the real processor (which expands image tokens and returns
pixel values and the grid), the response through the tokenizer, as generation would produce it. A micro-batch
is either right-padded (`collate`) or packed without padding (`mathse.training.packing`); both give the same loss.
"""

from __future__ import annotations

import re

import torch

from mathse.config import TrainConfig
from mathse.modeling import load_image, prompt_text
from mathse.training.packing import IGNORE, image_inputs, pack


def encode_examples(
    processor, rows: list[dict], prompt_version: str, loss_weights: dict[str, float] | None = None
) -> list[dict]:
    """Tokenize (question, images, response) rows into tensors with response-only labels.

    With `loss_weights` (train.loss_weights) each example also gets per-token `weights` (`response_weights`).
    """
    tok = processor.tokenizer
    eos = tok.eos_token
    prompt_cache: dict[str, dict] = {}
    examples = []
    for r in rows:
        key = r["problem_id"]
        if key not in prompt_cache:
            images = [load_image(p) for p in r["images"]]
            enc = processor(
                text=[prompt_text(processor, r["question"], len(images), prompt_version)],
                images=[images] if images else None,
                return_tensors="pt",
            )
            prompt_cache[key] = enc
        enc = prompt_cache[key]
        response_ids = tok(r["response"] + eos, add_special_tokens=False)["input_ids"]
        prompt_ids = enc["input_ids"][0]
        ids = torch.cat([prompt_ids, torch.tensor(response_ids, dtype=prompt_ids.dtype)])
        labels = ids.clone()
        labels[: len(prompt_ids)] = IGNORE
        ex = {"input_ids": ids, "labels": labels}
        if loss_weights:
            weights = torch.zeros(len(ids))
            weights[len(prompt_ids) :] = response_weights(tok, r["response"] + eos, loss_weights)
            ex["weights"] = weights
        if "mm_token_type_ids" in enc:
            ex["mm_token_type_ids"] = torch.cat(
                [
                    enc["mm_token_type_ids"][0],
                    torch.zeros(len(response_ids), dtype=enc["mm_token_type_ids"].dtype),
                ]
            )
        # The processor's image tensors (Qwen2-VL: pixel_values and image_grid_thw; InternVL: pixel_values),
        # one entry per image along dim 0, as a batch concatenates them.
        ex["image_inputs"] = {k: v for k, v in enc.items() if k not in TEXT_KEYS}
        examples.append(ex)
    return examples


TEXT_KEYS = ("input_ids", "attention_mask", "mm_token_type_ids")


def response_weights(tok, text: str, loss_weights: dict[str, float]) -> torch.Tensor:
    """Per-token loss weight of `text` as `tok` encodes it: 1, or a pattern's weight for the tokens that
    overlap its match's first group (the whole match if it has no group); the largest weight wins."""
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    weights = torch.ones(len(enc["input_ids"]))
    for pattern, w in loss_weights.items():
        for m in re.finditer(pattern, text):
            g = 1 if m.re.groups else 0
            for i, (a, b) in enumerate(enc["offset_mapping"]):
                if a < m.end(g) and b > m.start(g):
                    weights[i] = max(weights[i], w)
    return weights


def weighted_loss(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy as the model computes it, but a weighted mean over the labelled tokens."""
    logits, labels, weights = logits[:, :-1].float(), labels[:, 1:], weights[:, 1:].to(logits.device)
    ce = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.size(-1)), labels.reshape(-1), ignore_index=IGNORE, reduction="none"
    )
    w = weights.reshape(-1) * (labels.reshape(-1) != IGNORE)
    return (ce * w).sum() / w.sum().clamp(min=1e-9)


def collate(examples: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a batch; concatenate images' patches in batch order (as the processor does)."""
    width = max(len(e["input_ids"]) for e in examples)
    n = len(examples)
    batch = {
        "input_ids": torch.full((n, width), pad_id, dtype=torch.long),
        "labels": torch.full((n, width), IGNORE, dtype=torch.long),
        "attention_mask": torch.zeros((n, width), dtype=torch.long),
    }
    if "mm_token_type_ids" in examples[0]:
        batch["mm_token_type_ids"] = torch.zeros((n, width), dtype=examples[0]["mm_token_type_ids"].dtype)
    for i, e in enumerate(examples):
        m = len(e["input_ids"])
        batch["input_ids"][i, :m] = e["input_ids"]
        batch["labels"][i, :m] = e["labels"]
        batch["attention_mask"][i, :m] = 1
        if "weights" in e:
            batch.setdefault("weights", torch.zeros((n, width)))[i, :m] = e["weights"]
        if "mm_token_type_ids" in batch:
            batch["mm_token_type_ids"][i, :m] = e["mm_token_type_ids"]
    return batch | image_inputs(examples)


def make_batch(examples: list[dict], pad_id: int, cfg: TrainConfig) -> dict[str, torch.Tensor]:
    """One micro-batch: packed (examples need `add_positions` first) or right-padded."""
    return pack(examples, pad_id, cfg.packing_max_length) if cfg.packing else collate(examples, pad_id)
