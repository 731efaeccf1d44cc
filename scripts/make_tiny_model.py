"""Rule make_tiny_model: a random tiny Qwen2-VL with a locally trained tokenizer -> model.path (HF format)."""

from mathse.jobserver import delegate

delegate()  # in a local run, the job runs in the run's warm job server (src/mathse/jobserver.py)

from mathse.config import DataConfig, TinyModelConfig
from mathse.logs import setup_logging
from mathse.modeling import setup_torch
from mathse.training.tiny_model import make_tiny_model


def main(smk) -> None:
    setup_logging(smk.log[0])
    setup_torch(smk.threads)
    make_tiny_model(
        smk.output[0],
        TinyModelConfig.model_validate(smk.params.tiny),
        DataConfig.model_validate(smk.params.data),
        smk.params.seed,
    )


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 - injected by Snakemake
