"""Rule distill: the teacher solves the seed part -> results/round_0/distilled.parquet (with ORM verdicts)."""

from mathse.config import TeacherConfig
from mathse.logs import setup_logging
from mathse.teacher import distill


def main(smk) -> None:
    setup_logging(smk.log[0])
    distill(smk.input.seed, smk.output[0], TeacherConfig.model_validate(smk.params.teacher), smk.params.seed)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 - injected by Snakemake
