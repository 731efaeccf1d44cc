"""Padding-free training batches: a micro-batch's sequences packed end to end into a few rows.

Each sequence keeps the positions it would have alone: for Qwen2-VL-family models the 3-D multimodal rope
indices (`get_rope_index` on that sequence, images included) plus a 1-D text row that restarts at 0 where
a sequence starts. transformers reads that text row to keep sequences apart: with no attention mask it
finds the restarts (masking_utils.find_packed_sequence_indices) and builds a block-diagonal causal mask
for sdpa/eager, or cu_seqlens for flash-attention's varlen kernels. The first label of every sequence is
ignored, so the shifted loss never predicts one sequence's first token from the previous one's last.

A dense block-diagonal mask still costs sdpa the whole row squared, which eats the gain of dropping the
padding, so for sdpa models training switches to `PACKED_SDPA`: causal sdpa on each sequence of a row in
turn (what flash-attention's varlen kernel does, on any device).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

IGNORE = -100
PACKED_SDPA = "mathse_packed_sdpa"


def packed_sdpa_forward(module, query, key, value, attention_mask, position_ids=None, **kwargs):
    """An AttentionInterface function: sdpa per packed sequence, found where `position_ids` restart.

    Only for packed batches (no padding mask reaches it). Non-causal calls (the vision tower, which
    already splits its images) and unpacked rows go to plain sdpa.
    """
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    causal = kwargs.get("is_causal", getattr(module, "is_causal", True))
    if attention_mask is not None:
        raise ValueError(f"{PACKED_SDPA} takes packed batches only, not a padding mask")
    if position_ids is None or not causal:
        return sdpa_attention_forward(module, query, key, value, None, **kwargs)
    rows = []
    for b in range(query.shape[0]):
        pos = position_ids[b]
        starts = torch.cat([pos.new_zeros(1), (pos[1:] - pos[:-1] != 1).nonzero().flatten() + 1])
        lengths = torch.diff(starts, append=pos.new_tensor([len(pos)])).tolist()
        parts = zip(*(t[b : b + 1].split(lengths, dim=2) for t in (query, key, value)), strict=True)
        rows.append(torch.cat([sdpa_attention_forward(module, q, k, v, None, **kwargs)[0] for q, k, v in parts], 1))
    return torch.cat(rows), None


def register_packed_sdpa() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(PACKED_SDPA, packed_sdpa_forward)


@contextmanager
def packed_attention(model):
    """Train an sdpa model with `PACKED_SDPA`, then restore its attention (so saved configs stay plain)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    before = base.config._attn_implementation
    if before != "sdpa":  # eager and flash-attention handle packed rows themselves
        yield
        return
    register_packed_sdpa()
    base.set_attn_implementation(PACKED_SDPA)
    try:
        yield
    finally:
        base.set_attn_implementation(before)


def rope_model(model):
    """The module with Qwen2-VL's `get_rope_index` (under peft and task heads), or None for 1-D rope."""
    return next((m for m in model.modules() if hasattr(m, "get_rope_index")), None)


def add_positions(model, examples: list[dict]) -> None:
    """Store each example's own rope positions, (3, L) for multimodal rope, once (they do not change)."""
    rope = rope_model(model)
    for ex in examples:
        if "positions" in ex:
            continue
        if rope is None or "mm_token_type_ids" not in ex:
            ex["positions"] = None
            continue
        pos, _ = rope.get_rope_index(
            ex["input_ids"][None],
            mm_token_type_ids=ex["mm_token_type_ids"][None],
            image_grid_thw=ex.get("image_inputs", {}).get("image_grid_thw"),
        )
        ex["positions"] = pos[:, 0]


def assign_rows(lengths: list[int], max_length: int) -> list[list[int]]:
    """First-fit decreasing: indices into `lengths` in rows of at most max(max_length, longest); 0: one row."""
    cap = max(max_length, max(lengths)) if max_length else sum(lengths)
    rows: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        j = next((j for j, r in enumerate(room) if r >= lengths[i]), None)
        if j is None:
            rows.append([i])
            room.append(cap - lengths[i])
        else:
            rows[j].append(i)
            room[j] -= lengths[i]
    return rows


def pack(examples: list[dict], pad_id: int, max_length: int = 0) -> dict[str, torch.Tensor]:
    """A packed batch of `examples` (with positions from `add_positions`) in as few rows as fit.

    A row holds at most max(max_length, longest sequence) tokens; 0: one row. The tail of a short row is
    padding that forms its own sequence (positions from 0, labels ignored), so real tokens never see it.
    """
    if any("positions" not in e for e in examples):
        raise ValueError("pack: call add_positions(model, examples) first")
    rows = assign_rows([len(e["input_ids"]) for e in examples], max_length)
    width = max(sum(len(examples[i]["input_ids"]) for i in row) for row in rows)
    mrope = examples[0].get("positions") is not None
    n = len(rows)
    input_ids = torch.full((n, width), pad_id, dtype=torch.long)
    labels = torch.full((n, width), IGNORE, dtype=torch.long)
    weights = torch.zeros((n, width))
    text_pos = torch.zeros((n, width), dtype=torch.long)
    rope_pos = torch.zeros((3, n, width), dtype=torch.long)
    ordered = []
    for r, row in enumerate(rows):
        at = 0
        for i in row:
            e = examples[i]
            m = len(e["input_ids"])
            input_ids[r, at : at + m] = e["input_ids"]
            labels[r, at : at + m] = e["labels"]
            labels[r, at] = IGNORE
            if "weights" in e:  # per-token loss weights (train.loss_weights)
                weights[r, at : at + m] = e["weights"]
            text_pos[r, at : at + m] = torch.arange(m)
            rope_pos[:, r, at : at + m] = e["positions"] if mrope else torch.arange(m)
            at += m
            ordered.append(e)
        text_pos[r, at:] = torch.arange(width - at)
        rope_pos[:, r, at:] = torch.arange(width - at)
    # Qwen2-VL's text model takes (4, rows, width): the text positions first, then the three rope axes.
    positions = torch.cat([text_pos[None], rope_pos]) if mrope else text_pos
    # A cache would turn off the packed-sequence detection (it assumes generation), so none is made.
    batch = {"input_ids": input_ids, "labels": labels, "position_ids": positions, "use_cache": False}
    if "weights" in examples[0]:
        batch["weights"] = weights
    return batch | image_inputs(ordered)  # the image features fill the image tokens in row-major order


def image_inputs(examples: list[dict]) -> dict[str, torch.Tensor]:
    """The examples' image tensors (Qwen2-VL: pixel_values, image_grid_thw; InternVL: pixel_values), each
    concatenated along dim 0 in batch order, the order in which the image tokens appear."""
    keys = dict.fromkeys(k for e in examples for k in e.get("image_inputs", {}))
    return {k: torch.cat([e["image_inputs"][k] for e in examples if k in e["image_inputs"]]) for k in keys}
