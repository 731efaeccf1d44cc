"""Training: from a round's judged paths to the next round's weights.

`assemble` (the cumulative training set), `batches` and `packing` (examples and micro-batches), `train`
(fine-tuning, DDP), `sharding` (FSDP), `checkpoint` (resumable state), `metrics` (per-step metrics and
trackers) and `tiny_model` (the locally made tiny model)."""
