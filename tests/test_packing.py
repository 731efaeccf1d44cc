"""Packed training batches: the same loss and gradients as padded ones, and no attention across sequences."""

from contextlib import nullcontext

import pytest
import torch

from mathse.artifacts import read_table
from mathse.config import TrainConfig
from mathse.modeling import load_model, load_processor
from mathse.training.packing import IGNORE, add_positions, assign_rows, pack, packed_attention
from mathse.training.train import collate, enable_checkpointing, encode_examples, response_weights, train, weighted_loss

RESPONSE_LENGTHS = [3, 60, 17, 150, 41, 9]


@pytest.fixture(scope="module")
def examples(tiny_model_dir, data_dir):
    """Problems with one or two images and responses of very different lengths."""
    problems = read_table(data_dir / "seed.parquet", "problem").head(len(RESPONSE_LENGTHS)).to_dicts()
    rows = [
        {
            "problem_id": p["problem_id"],
            "question": p["question"],
            "images": p["images"] * (1 + i % 2),
            "response": " ".join(str(d % 10) for d in range(n)),
        }
        for i, (p, n) in enumerate(zip(problems, RESPONSE_LENGTHS, strict=True))
    ]
    exs = encode_examples(load_processor(str(tiny_model_dir)), rows, "v1")
    assert len({len(e["input_ids"]) for e in exs}) == len(exs)
    assert {len(e["image_inputs"]["image_grid_thw"]) for e in exs} == {1, 2}
    return exs


@pytest.fixture(scope="module")
def model(tiny_model_dir, examples):
    m = load_model(str(tiny_model_dir), trainable=True)
    m.config.use_cache = False
    add_positions(m, examples)
    return m


def test_first_fit_decreasing_rows():
    assert assign_rows([5, 3, 9, 4, 1], 9) == [[2], [0, 3], [1, 4]]
    assert assign_rows([5, 3, 9, 4, 1], 100) == [[2, 0, 3, 1, 4]]
    assert assign_rows([5, 3, 9, 4, 1], 0) == [[2, 0, 3, 1, 4]]
    assert assign_rows([5, 3], 2) == [[0], [1]]


def test_no_loss_across_a_sequence_boundary(model, examples):
    batch = pack(examples, 0, max_length=10_000)
    assert batch["input_ids"].shape[0] == 1
    starts = (batch["position_ids"][0, 0] == 0).nonzero().flatten()
    assert len(starts) == len(examples)
    assert (batch["labels"][0, starts] == IGNORE).all()
    # Every response token is still a target, exactly once.
    n_targets = sum(int((e["labels"] != IGNORE).sum()) for e in examples)
    assert int((batch["labels"] != IGNORE).sum()) == n_targets
    # With every token a target (nothing masked at a start), the loss is still the padded one.
    unmasked = [{**e, "labels": e["input_ids"].clone()} for e in examples]
    with torch.no_grad():
        padded = model(**collate(unmasked, 0), use_cache=False).loss
        packed = model(**pack(unmasked, 0, max_length=10_000)).loss
    assert packed.item() == pytest.approx(padded.item(), rel=1e-5)


def _loss_and_grads(model, batch):
    model.zero_grad(set_to_none=True)
    loss = model(**batch).loss
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("attention", ["block mask", "per sequence"])
@pytest.mark.parametrize("max_length", [0, 160])
def test_packed_batch_gives_the_padded_loss_and_gradients(model, examples, max_length, attention):
    packed = pack(examples, 0, max_length)
    assert packed["input_ids"].numel() < collate(examples, 0)["input_ids"].numel()
    assert (packed["input_ids"].shape[0] == 1) == (max_length == 0)
    loss_pad, grads_pad = _loss_and_grads(model, collate(examples, 0))
    with packed_attention(model) if attention == "per sequence" else nullcontext():
        assert (model.config._attn_implementation != "sdpa") == (attention == "per sequence")
        loss_pack, grads_pack = _loss_and_grads(model, packed)
    assert model.config._attn_implementation == "sdpa"
    assert loss_pack == pytest.approx(loss_pad, rel=1e-5)
    assert grads_pad.keys() == grads_pack.keys() and len(grads_pad) > 50
    for name, g in grads_pad.items():
        torch.testing.assert_close(grads_pack[name], g, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("attention", ["block mask", "per sequence"])
def test_packed_tokens_see_only_their_own_sequence(model, examples, attention):
    batch = pack(examples, 0, max_length=10_000)
    with torch.no_grad():
        with packed_attention(model) if attention == "per sequence" else nullcontext():
            packed = model(**batch).logits[0]
        at = 0
        for i in assign_rows([len(e["input_ids"]) for e in examples], 10_000)[0]:  # the row's order
            e = examples[i]
            m = len(e["input_ids"])
            alone = model(**collate([e], 0), use_cache=False).logits[0]
            torch.testing.assert_close(packed[at : at + m], alone, rtol=1e-5, atol=1e-5)
            at += m


def test_gradient_checkpointing_under_lora_gives_the_same_gradients(tiny_model_dir, examples):
    from peft import LoraConfig, get_peft_model

    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        m = load_model(str(tiny_model_dir), trainable=True)
        m.config.use_cache = False
        m = get_peft_model(m, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], lora_dropout=0.0))
        # LoRA B starts at zero, so give it weights for the A gradients to be non-zero.
        for n, p in m.named_parameters():
            if "lora_B" in n:
                torch.nn.init.normal_(p, std=0.02)
        if checkpointing:
            enable_checkpointing(m)
            assert m.get_base_model().is_activation_checkpointing
        add_positions(m, examples)
        _, g = _loss_and_grads(m, pack(examples[:3], 0))
        grads.append(g)
    assert grads[0].keys() == grads[1].keys() and all("lora_" in n for n in grads[0])
    assert all(g.abs().sum() > 0 for g in grads[1].values())
    for name, g in grads[0].items():
        torch.testing.assert_close(grads[1][name], g, rtol=1e-4, atol=1e-7, msg=name)


def _train(tmp_path, tiny_model_dir, name, **kw):
    cfg = TrainConfig(num_train_epochs=1, min_steps=4, max_steps=4, per_device_train_batch_size=4, save_steps=0, **kw)
    return train(
        str(tmp_path / "train.parquet"), str(tiny_model_dir), None, str(tmp_path / name), cfg,
        round_idx=0, seed=0, prompt_version="v1",
    )  # fmt: skip


@pytest.mark.slow
def test_training_packed_or_padded_reaches_the_same_loss(tmp_path, tiny_model_dir, data_dir):
    from test_model import _train_table

    _train_table(data_dir, tmp_path / "train.parquet")
    padded = _train(tmp_path, tiny_model_dir, "padded", packing=False)
    packed = _train(tmp_path, tiny_model_dir, "packed", packing=True)
    assert packed["final_loss"] == pytest.approx(padded["final_loss"], rel=1e-4)
    fast = _train(tmp_path, tiny_model_dir, "fast", packing=True, gradient_checkpointing=True, bf16=True)
    assert fast["final_loss"] == pytest.approx(padded["final_loss"], rel=0.05)


def test_internvl_packed_batch_gives_the_padded_loss_and_trains(data_dir, tmp_path):
    """A second architecture (1-D rope, ViT tiles): packing still keeps sequences apart."""
    from mathse.config import DataConfig, TinyModelConfig
    from mathse.training.tiny_model import make_tiny_model

    folder = tmp_path / "internvl"
    make_tiny_model(str(folder), TinyModelConfig(architecture="internvl"), DataConfig(), seed=0)
    problems = read_table(data_dir / "seed.parquet", "problem").head(4).to_dicts()
    rows = [
        {"problem_id": p["problem_id"], "question": p["question"], "images": p["images"] * (1 + i % 2),
         "response": " ".join(str(d % 10) for d in range(n))}
        for i, (p, n) in enumerate(zip(problems, [3, 60, 17, 90], strict=True))
    ]  # fmt: skip
    exs = encode_examples(load_processor(str(folder)), rows, "v1")
    assert set(exs[1]["image_inputs"]) == {"pixel_values"} and len(exs[1]["image_inputs"]["pixel_values"]) == 2
    m = load_model(str(folder), trainable=True)
    add_positions(m, exs)
    padded = _loss_and_grads(m, {**collate(exs, 0), "use_cache": False})
    with packed_attention(m):
        packed = _loss_and_grads(m, pack(exs, 0))
    assert packed[0] == pytest.approx(padded[0], rel=1e-5)
    for name, g in padded[1].items():
        torch.testing.assert_close(packed[1][name], g, rtol=1e-4, atol=1e-6)


def test_loss_weights_weigh_the_matched_response_tokens(tiny_model_dir):
    tok = load_processor(str(tiny_model_dir)).tokenizer
    text = '{"status": "WRONG", "error_step": 2}<|im_end|>'
    tokens = tok.convert_ids_to_tokens(tok(text, add_special_tokens=False)["input_ids"])
    w = response_weights(tok, text, {'"status": "(\\w)': 20.0, r"\d": 3.0})
    assert len(w) == len(tokens)
    assert {t: x for t, x in zip(tokens, w.tolist(), strict=True) if x != 1} == {"W": 20.0, "2": 3.0}
    assert response_weights(tok, text, {"nowhere": 5.0}).tolist() == [1.0] * len(tokens)


@pytest.mark.parametrize("packed", [False, True])
def test_weighted_loss_is_the_models_loss_with_unit_weights_and_a_weighted_mean_otherwise(model, examples, packed):
    weighted = []
    for e in examples:
        w = torch.where(e["labels"] != IGNORE, 1.0, 0.0)
        w[-2] = 5.0  # one response token (the last before EOS) counts five times
        weighted.append({**e, "weights": w})
    batch = pack(weighted, 0, 10_000) if packed else collate(weighted, 0)
    weights = batch.pop("weights")
    with torch.no_grad():
        out = model(**batch)
        plain = weighted_loss(out.logits, batch["labels"], torch.ones_like(weights))
        loss = weighted_loss(out.logits, batch["labels"], weights)
        ce = torch.nn.functional.cross_entropy(
            out.logits[:, :-1].flatten(0, 1), batch["labels"][:, 1:].flatten(), reduction="none"
        ).view(batch["labels"].shape[0], -1)
    assert plain.item() == pytest.approx(out.loss.item(), rel=1e-5)
    labelled = batch["labels"][:, 1:] != IGNORE
    w = weights[:, 1:] * labelled
    assert loss.item() == pytest.approx(((ce * w).sum() / w.sum()).item(), rel=1e-5)
    assert abs(loss.item() - plain.item()) > 1e-5  # the weighted token moves the mean (a random model: a little)
