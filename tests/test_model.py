"""The tiny model: real HF loading code, batched generation, training (full and LoRA)."""

import json

import polars as pl
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForImageTextToText, AutoProcessor

from mathse.artifacts import read_table, write_table
from mathse.config import ModelConfig, RolloutConfig, TrainConfig
from mathse.generation.hf_backend import generate_paths
from mathse.generation.rollout import run_rollout
from mathse.modeling import load_model, load_processor
from mathse.prompts import format_solution
from mathse.training.train import train


def test_tiny_model_loads_with_auto_classes(tiny_model_dir):
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    assert type(processor).__name__ == "Qwen2VLProcessor"
    assert type(model).__name__ == "Qwen2VLForConditionalGeneration"
    assert processor.tokenizer.convert_tokens_to_ids("<|image_pad|>") == model.config.image_token_id
    # Digits are single tokens, as in Qwen2's tokenizer.
    ids = processor.tokenizer("1234", add_special_tokens=False)["input_ids"]
    assert len(ids) == 4
    text = "Step 1: The left bar is 3.\nThe answer to this problem is 8."
    assert processor.tokenizer.decode(processor.tokenizer(text)["input_ids"]) == text


def _problems(data_dir, n=4):
    return (
        read_table(data_dir / "pool.parquet", "problem").head(n).select("problem_id", "question", "images").to_dicts()
    )


def test_sampling_is_reproducible_and_batch_independent(tiny_model_dir, data_dir):
    model, processor = load_model(str(tiny_model_dir)), load_processor(str(tiny_model_dir))
    kw = dict(num_samples=3, do_sample=True, max_new_tokens=8, seed_key=(0, 1))
    a = generate_paths(model, processor, _problems(data_dir), batch_size=4, **kw)
    b = generate_paths(model, processor, _problems(data_dir), batch_size=4, **kw)
    assert a == b
    assert [(r["problem_id"], r["sample_idx"]) for r in a] == [
        (p["problem_id"], s) for p in _problems(data_dir) for s in range(3)
    ]
    greedy_batched = generate_paths(model, processor, _problems(data_dir), batch_size=4, max_new_tokens=8)
    greedy_single = generate_paths(model, processor, _problems(data_dir), batch_size=1, max_new_tokens=8)
    assert [r["response"] for r in greedy_batched] == [r["response"] for r in greedy_single]


def test_stop_strings_end_a_path_where_they_first_appear(tiny_model_dir, data_dir):
    import re

    model, processor = load_model(str(tiny_model_dir)), load_processor(str(tiny_model_dir))
    problems = _problems(data_dir)
    full = generate_paths(model, processor, problems, batch_size=4, max_new_tokens=24)
    checked = 0
    for p, r_full in zip(problems, full, strict=True):
        text = r_full["response"]
        # A stop string of plain letters from the second half (the random model also writes partial bytes).
        m = re.search(r"[a-z]{2,}(?= )", text[len(text) // 3 :])  # a whole word: it ends a token
        if not m:
            continue
        stop = m.group()
        (r,) = generate_paths(model, processor, [p], max_new_tokens=24, stop=[stop])
        assert r["response"] == text[: text.find(stop)].strip()
        assert r["finished"] and r["num_tokens"] < r_full["num_tokens"]
        checked += 1
    assert checked >= 2


def _train_table(data_dir, path):
    seed = read_table(data_dir / "seed.parquet", "problem")
    rows = seed.select(
        "problem_id",
        "question",
        "images",
        response=pl.struct("solution_steps", "answer").map_elements(
            lambda s: format_solution(s["solution_steps"], s["answer"]), return_dtype=pl.String
        ),
        origin=pl.lit("distill"),
        round_added=pl.lit(0),
        sample_idx=pl.lit(0),
        model=pl.lit("t"),
        backend=pl.lit("programmatic"),
        prompt_version=pl.lit("v1"),
    )
    write_table(rows, path, "train")


def test_train_torch_dtype_keeps_float32_master_weights_over_a_bfloat16_model(tiny_model_dir, data_dir, tmp_path):
    _train_table(data_dir, tmp_path / "train.parquet")
    for train_dtype, expected in ((None, torch.bfloat16), ("float32", torch.float32)):
        cfg = TrainConfig(min_steps=1, max_steps=1, per_device_train_batch_size=2, torch_dtype=train_dtype)
        out = tmp_path / f"out_{train_dtype}"
        train(str(tmp_path / "train.parquet"), str(tiny_model_dir), None, str(out), cfg, round_idx=0, seed=0,
              prompt_version="v1", dtype="bfloat16")  # fmt: skip
        weights = load_file(out / "model.safetensors")
        assert {w.dtype for w in weights.values()} == {expected}


@pytest.mark.slow
@pytest.mark.parametrize("method", ["full", "lora"])
def test_training_lowers_the_loss_and_saves_loadable_weights(method, tiny_model_dir, data_dir, tmp_path):
    _train_table(data_dir, tmp_path / "train.parquet")
    cfg = TrainConfig(
        method=method,
        lr=3e-3,
        num_train_epochs=1,
        min_steps=30,
        max_steps=30,
        per_device_train_batch_size=4,
        warmup_ratio=0.0,
        lora={"r": 8, "lora_alpha": 16},
    )
    info = train(
        str(tmp_path / "train.parquet"),
        str(tiny_model_dir),
        None,
        str(tmp_path / "adapter"),
        cfg,
        round_idx=0,
        seed=0,
        prompt_version="v1",
    )
    marker = json.loads((tmp_path / "adapter/mathse_train.json").read_text())
    assert marker["steps"] == 30 and info["final_loss"] < 5.5
    expected = "adapter_config.json" if method == "lora" else "config.json"
    assert (tmp_path / "adapter" / expected).exists()
    # Round r+1 starts from these weights; rollouts load them with the same code.
    out = tmp_path / "rollouts.parquet"
    run_rollout(
        str(data_dir / "pool.parquet"),
        str(tmp_path / "adapter"),
        str(out),
        ModelConfig(path=str(tiny_model_dir)),
        RolloutConfig(num_samples=2, max_new_tokens=8),
        round_idx=1,
        seed=0,
    )
    assert read_table(out, "rollout").height == 2 * read_table(data_dir / "pool.parquet", "problem").height
    info2 = train(
        str(tmp_path / "train.parquet"),
        str(tiny_model_dir),
        str(tmp_path / "adapter"),
        str(tmp_path / "adapter2"),
        cfg,
        round_idx=1,
        seed=0,
        prompt_version="v1",
    )
    assert info2["init"] == str(tmp_path / "adapter")


@pytest.fixture(scope="module")
def tiny_internvl_dir(tmp_path_factory):
    from mathse.config import DataConfig, TinyModelConfig
    from mathse.training.tiny_model import make_tiny_model

    d = tmp_path_factory.mktemp("internvl") / "tiny"
    make_tiny_model(str(d), TinyModelConfig(architecture="internvl"), DataConfig(), seed=0)
    return d


def test_tiny_internvl_loads_and_generates_through_the_same_code(tiny_internvl_dir, data_dir):
    processor = AutoProcessor.from_pretrained(tiny_internvl_dir)
    model = AutoModelForImageTextToText.from_pretrained(tiny_internvl_dir)
    assert (type(processor).__name__, type(model).__name__) == ("InternVLProcessor", "InternVLForConditionalGeneration")
    model, processor = load_model(str(tiny_internvl_dir)), load_processor(str(tiny_internvl_dir))
    problems = _problems(data_dir)
    sampled = generate_paths(model, processor, problems, num_samples=2, do_sample=True, max_new_tokens=8)
    assert [(r["problem_id"], r["sample_idx"]) for r in sampled] == [
        (p["problem_id"], s) for p in problems for s in range(2)
    ]
    batched = generate_paths(model, processor, problems, batch_size=4, max_new_tokens=8)
    single = generate_paths(model, processor, problems, batch_size=1, max_new_tokens=8)
    assert [r["response"] for r in batched] == [r["response"] for r in single]


@pytest.mark.slow
def test_the_whole_loop_runs_on_a_tiny_internvl(tmp_path):
    from test_workflow import snakemake, write_config

    # One round: every rule of the loop (round 0, then rollout, judge, reflect, assemble, train, evaluate).
    write_config(tmp_path, model__tiny={"architecture": "internvl"}, run__rounds=1)
    snakemake(tmp_path, "--cores", "2")
    summary = read_table(tmp_path / "results/summary.parquet", "summary")
    assert summary["stage"].to_list() == ["base", "round_0", "round_1"]
    config = json.loads((tmp_path / "results/model/tiny/config.json").read_text())
    assert config["model_type"] == "internvl"
    assert read_table(tmp_path / "results/round_1/rollouts.parquet", "rollout").height > 0
    assert json.loads((tmp_path / "results/round_1/adapter/mathse_train.json").read_text())["steps"] == 3
