"""Rule curves: the rounds' per-step training metrics (round_{r}/adapter/train_metrics.parquet), the summary and
the generation stats -> results/report/curves.png (loss per round, accuracy beside it) and generation.png."""

from mathse.jobserver import delegate

delegate()  # in a local run, the job runs in the run's warm job server (src/mathse/jobserver.py)

from mathse.logs import setup_logging
from mathse.reporting.curves import make_curves


def main(smk) -> None:
    setup_logging(smk.log[0])
    make_curves(
        list(smk.input.adapters),
        smk.input.summary,
        list(smk.input.stats),
        smk.output.curves,
        smk.output.generation,
    )


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 - injected by Snakemake
