"""Rule orm_table5: the paper's Table 5 - the label-only ORM (results/orm/binary/) beside the step-and-analysis
ORM (results/orm/) on the same held-out paths, with each one's training time -> results/orm/table5.md."""

from mathse.jobserver import delegate

delegate()  # in a local run, the job runs in the run's warm job server (src/mathse/jobserver.py)

from mathse.judging.orm_train import table5
from mathse.logs import setup_logging


def main(smk) -> None:
    setup_logging(smk.log[0])
    table5(
        {"full": smk.input.full, "binary": smk.input.binary},
        {"full": smk.input.full_weights, "binary": smk.input.binary_weights},
        smk.output[0],
    )


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 - injected by Snakemake
