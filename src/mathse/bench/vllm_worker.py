"""The vllm side of the vllm bench, run inside .venv-vllm (as tests/vllm_runner.py is for the vLLM tests).

    python -m mathse.bench.vllm_worker SPEC.json RESULT_FD

Loads one engine for the spec's model, then answers runs until its stdin closes: each stdin line is the
keyword arguments of one `vllm_backend.generate_paths` call on the spec's problems; each answer, one JSON
line on the file descriptor RESULT_FD (vLLM logs to stdout and stderr), holds the rows and the seconds of
that call. The first answer reports the engine's start time and versions. The engine stays up between
runs, so that the bench can alternate the two backends without timing vLLM's start each time.
"""

import json
import os
import sys
import time


def main(spec_path: str, result_fd: str) -> None:
    import torch
    import transformers
    import vllm
    from transformers import AutoTokenizer

    from mathse.config import VllmConfig
    from mathse.generation.vllm_backend import generate_paths, load_engine

    with open(spec_path) as f:
        spec = json.load(f)
    results = os.fdopen(int(result_fd), "w")

    def answer(obj: dict) -> None:
        results.write(json.dumps(obj) + "\n")
        results.flush()

    t0 = time.perf_counter()
    engine = load_engine(spec["model"], None, "float32", VllmConfig(**spec["vllm"]), seed=0)
    tokenizer = AutoTokenizer.from_pretrained(spec["model"])
    versions = {m.__name__: m.__version__ for m in (vllm, torch, transformers)}
    answer({"start_s": time.perf_counter() - t0, "versions": versions, "info": engine.info})
    for line in sys.stdin:
        options = json.loads(line)
        options["seed_key"] = tuple(options.get("seed_key", (0,)))
        t0 = time.perf_counter()
        rows = generate_paths(engine, tokenizer, spec["problems"], **options)
        answer({"rows": rows, "seconds": time.perf_counter() - t0})


if __name__ == "__main__":  # vLLM's engine process re-imports the main module
    main(*sys.argv[1:])
