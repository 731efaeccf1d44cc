"""mathse: the MathSE self-evolving loop for multimodal LLMs on visual math, as a Snakemake pipeline."""

__version__ = "0.1.0"
