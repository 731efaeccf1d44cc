"""The benchmark suite: ``python -m mathse.bench [--out BENCHMARKS.md]`` (one module per figure).

Each figure is measured side by side in one run and reported as a ratio or a bound, because the machine may
be shared and absolute times are noisy.
"""
