"""Rule judge: the ORM's verdict on every sampled path -> results/round_{r}/judgments.parquet."""

from mathse.logs import setup_logging
from mathse.orm import run_judge


def main(smk) -> None:
    setup_logging(smk.log[0])
    run_judge(smk.input.rollouts, smk.input.problems, smk.output[0])


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 - injected by Snakemake
