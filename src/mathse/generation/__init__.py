"""Generation: the current model solves problems.

`hf_backend` (batched transformers generate) and `vllm_backend` (vLLM's offline engine) share one contract;
`rollout` is the rollout and evaluate rules; `serve` serves a local model as an OpenAI-compatible endpoint."""
