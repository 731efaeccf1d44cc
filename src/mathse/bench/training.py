"""Training packing: real tokens per second, packed vs right-padded micro-batches, on mixed-length responses."""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from PIL import Image

from mathse.bench import MID_SIZE
from mathse.config import DataConfig, TinyModelConfig
from mathse.modeling import load_model, load_processor
from mathse.training.packing import add_positions, pack, packed_attention
from mathse.training.tiny_model import make_tiny_model
from mathse.training.train import collate, encode_examples

SHAPES = {"tiny": TinyModelConfig(), "mid": MID_SIZE}


def mixed_rows(n: int, lengths: tuple[int, int], folder: Path, seed: int) -> list[dict]:
    """n one-image problems whose responses have uniformly drawn lengths (digits: one token each)."""
    rng = random.Random(seed)
    size = DataConfig().image_size
    rows = []
    for i in range(n):
        path = folder / f"p{i}.png"
        Image.new("RGB", (size, size), (37 * i % 256, 120, 200)).save(path)
        digits = "".join(str(rng.randrange(10)) for _ in range(rng.randint(*lengths)))
        rows.append({"problem_id": f"p{i}", "question": f"What is {i} + 1?", "images": [str(path)], "response": digits})
    return rows


def mixed_examples(processor, n: int, lengths: tuple[int, int], folder: Path, seed: int) -> list[dict]:
    """mixed_rows encoded for training."""
    return encode_examples(processor, mixed_rows(n, lengths, folder, seed), "v1")


def train_steps(model, optimizer, batches: list[dict], packed: bool) -> float:
    """Optimiser steps on `batches`, with the attention train() uses for that layout; seconds taken."""
    with packed_attention(model) if packed else nullcontext():
        t0 = time.perf_counter()
        for batch in batches:
            optimizer.zero_grad(set_to_none=True)
            model(**batch).loss.backward()
            optimizer.step()
        return time.perf_counter() - t0


def bench_model(
    shape: TinyModelConfig,
    n_batches: int = 2,
    batch_size: int = 8,
    repeats: int = 3,
    lengths: tuple[int, int] = (10, 400),
    seed: int = 0,
) -> dict:
    """Same examples, same steps: each batch padded then packed, `repeats` times; sums of medians compared."""
    with tempfile.TemporaryDirectory() as tmp:
        make_tiny_model(f"{tmp}/model", shape, DataConfig(), seed=seed)
        processor = load_processor(f"{tmp}/model")
        examples = mixed_examples(processor, n_batches * batch_size, lengths, Path(tmp), seed)
        torch.manual_seed(seed)
        model = load_model(f"{tmp}/model", trainable=True)
    model.config.use_cache = False
    add_positions(model, examples)
    pad_id = processor.tokenizer.pad_token_id or 0
    groups = [examples[i : i + batch_size] for i in range(0, len(examples), batch_size)]
    padded = [collate(g, pad_id) for g in groups]
    packed = [pack(g, pad_id) for g in groups]
    with torch.no_grad():  # the two layouts must give the same loss on the same weights
        loss_padded = model(**padded[0]).loss.item()
        with packed_attention(model):
            loss_packed = model(**packed[0]).loss.item()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    train_steps(model, optimizer, padded[:1], False), train_steps(model, optimizer, packed[:1], True)  # warm-up
    # Alternate batch by batch, so that load from other jobs on a shared machine hits both layouts alike.
    times = {"padded": [[] for _ in groups], "packed": [[] for _ in groups]}
    for _ in range(repeats):
        for i in range(len(groups)):
            times["padded"][i].append(train_steps(model, optimizer, padded[i : i + 1], False))
            times["packed"][i].append(train_steps(model, optimizer, packed[i : i + 1], True))
    tokens = sum(len(e["input_ids"]) for e in examples)
    padded_s = sum(statistics.median(t) for t in times["padded"])
    packed_s = sum(statistics.median(t) for t in times["packed"])
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "examples": len(examples),
        "batch_size": batch_size,
        "lengths": [len(e["input_ids"]) for e in examples],
        "tokens": tokens,
        "padded_slots": sum(b["input_ids"].numel() for b in padded),
        "packed_slots": sum(b["input_ids"].numel() for b in packed),
        "padded_tokens_per_s": tokens / padded_s,
        "packed_tokens_per_s": tokens / packed_s,
        "ratio": padded_s / packed_s,
        "loss_padded": loss_padded,
        "loss_packed": loss_packed,
        "loss_rel_diff": abs(loss_packed - loss_padded) / abs(loss_padded),
    }


def bench_packing(shapes: dict[str, TinyModelConfig] | None = None, **kwargs) -> dict:
    """`bench_model` for each named model shape (default: the tiny demo model and a ~20M one)."""
    return {name: bench_model(shape, **kwargs) for name, shape in (shapes or SHAPES).items()}


def section(result: dict) -> list[str]:
    """BENCHMARKS.md lines for this figure."""
    first = next(iter(result.values()))
    lines = [
        "## Training: packed vs right-padded micro-batches",
        f"{first['examples']} one-image examples, responses of 10 to 400 tokens (sequences "
        f"{min(first['lengths'])}-{max(first['lengths'])} tokens), micro-batches of {first['batch_size']}, "
        "float32, AdamW steps; both layouts",
        "on the same batches, alternated, as train() runs them (packed: one row per micro-batch, sdpa per",
        "sequence). Tokens/s count real tokens only. Loss check: the first batch's loss in both layouts on the",
        "same weights (float32 rounding only).",
        "",
        "| model | parameters | token slots padded / packed | tokens/s padded | tokens/s packed | speed-up | "
        "loss rel. diff |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in result.items():
        lines.append(
            f"| {name} | {r['params'] / 1e6:.1f}M | {r['padded_slots']} / {r['packed_slots']} | "
            f"{r['padded_tokens_per_s']:.0f} | {r['packed_tokens_per_s']:.0f} | {r['ratio']:.2f}x | "
            f"{r['loss_rel_diff']:.1e} |"
        )
    lines.append("")
    return lines
