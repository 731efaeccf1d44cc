"""Rule make_orm_model: the tiny ORM's own random model (orm.tiny), whose tokenizer also learns the ORM's
prompt and verdict words -> results/orm/model/ (Hugging Face format, as make_tiny_model)."""

from mathse.jobserver import delegate

delegate()  # in a local run, the job runs in the run's warm job server (src/mathse/jobserver.py)

from mathse.config import DataConfig, TinyModelConfig
from mathse.judging.orm_train import orm_corpus
from mathse.logs import setup_logging
from mathse.modeling import setup_torch
from mathse.training.tiny_model import make_tiny_model


def main(smk) -> None:
    setup_logging(smk.log[0])
    setup_torch(smk.threads)
    data = DataConfig.model_validate(smk.params.data)
    make_tiny_model(
        smk.output[0],
        TinyModelConfig.model_validate(smk.params.tiny),
        data,
        smk.params.seed,
        extra_corpus=orm_corpus(data, smk.params.prompt_version),
    )


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 - injected by Snakemake
