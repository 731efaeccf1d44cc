"""The benchmark suite: ``python -m mathse.bench [--out BENCHMARKS.md]`` (one module per figure).

Each figure is measured side by side in one run and reported as a ratio or a bound, because the machine may
be shared and absolute times are noisy.
"""

from mathse.config import TinyModelConfig

# The mid-size model the issue asks for beside the tiny one: Qwen2-VL architecture, about 20M parameters.
MID_SIZE = TinyModelConfig(
    hidden_size=512,
    intermediate_size=1536,
    num_hidden_layers=6,
    num_attention_heads=8,
    num_key_value_heads=4,
    vision_embed_dim=128,
)
