"""Runs inside .venv-vllm for tests/test_vllm.py: the vllm backend on a JSON spec, results to JSON.

    python tests/vllm_runner.py SPEC.json OUT.json

The spec names the base model, optional weights (adapter or full), the vllm section, the problems and a
set of named generate_paths runs; the output has each run's rows, the raw greedy token ids per problem
(for the comparison with transformers), the merged folder when the engine loads one and, with
`stop_from: RUN`, that run again stopped at a string from the middle of its longest response.
"""

import json
import sys


def main(spec_path: str, out_path: str) -> None:
    from vllm import SamplingParams

    from mathse.config import VllmConfig
    from mathse.generation.vllm_backend import generate_paths, load_engine
    from mathse.modeling import load_processor, prompt_text

    with open(spec_path) as f:
        spec = json.load(f)
    if "rollout" in spec:  # the rollout rule's code path instead: run_rollout with backend vllm
        from mathse.config import ModelConfig, RolloutConfig
        from mathse.generation.rollout import run_rollout

        r = spec["rollout"]
        run_rollout(r["problems_path"], spec.get("weights"), r["out_path"],
                    ModelConfig(path=spec["base"], make_tiny=False), RolloutConfig(**r["cfg"]),
                    round_idx=1, seed=0, vllm_cfg=VllmConfig(**spec["vllm"]))  # fmt: skip
        return
    engine = load_engine(spec["base"], spec.get("weights"), "float32", VllmConfig(**spec["vllm"]), seed=0)
    processor = load_processor(spec["base"])
    problems = spec["problems"]
    out = {"model_path": engine.model_path, "lora": engine.lora is not None, "runs": {}}
    for name, options in spec["runs"].items():
        options["seed_key"] = tuple(options.get("seed_key", (0,)))
        items = spec[options.pop("problems", "problems")]
        out["runs"][name] = generate_paths(engine, processor, items, **options)
    texts = [prompt_text(processor, p["question"], 0, "v1") for p in problems]
    greedy = SamplingParams(temperature=0.0, max_tokens=spec["max_new_tokens"])
    results = engine.llm.generate(texts, greedy, lora_request=engine.lora, use_tqdm=False)
    out["greedy_ids"] = [list(r.outputs[0].token_ids) for r in results]
    out["prompt_ids"] = [list(r.prompt_token_ids) for r in results]
    if spec.get("stop_from"):  # that run again, stopped at a string from the middle of its longest response
        name = spec["stop_from"]
        longest = max((r["response"] for r in out["runs"][name]), key=len)
        stop = longest[len(longest) // 2 : len(longest) // 2 + 2]
        options = {**spec["runs"][name], "seed_key": tuple(spec["runs"][name]["seed_key"])}
        rows = generate_paths(engine, processor, problems, **options, stop=[stop])
        out["stopped"] = {"stop": stop, "rows": rows}
    with open(out_path, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":  # vLLM's engine process re-imports the main module
    main(*sys.argv[1:])
