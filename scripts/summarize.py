"""Rule summarize: all stages' scores -> results/summary.parquet and the markdown table results/summary.md."""

from mathse.jobserver import delegate

delegate()  # in a local run, the job runs in the run's warm job server (src/mathse/jobserver.py)

from pathlib import Path

from mathse.logs import setup_logging
from mathse.reporting.summarize import summarize


def main(smk) -> None:
    setup_logging(smk.log[0])
    # results/round_{r}/train.parquet and results/round_{r}/adapter: the stage is the folder's name.
    train = {Path(p).parent.name: p for p in smk.input.train}
    adapters = {Path(p).parent.name: p for p in smk.input.adapters}
    summarize(list(smk.input.scores), train, smk.output.summary, smk.output.table, smk.input.quarantine, adapters)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 - injected by Snakemake
