"""Rule prepare: procedural problems -> results/data/{seed,pool}.parquet, results/data/bench/{suite}.parquet."""

from mathse.jobserver import delegate

delegate()  # in a local run, the job runs in the run's warm job server (src/mathse/jobserver.py)

from mathse.config import DataConfig
from mathse.logs import setup_logging
from mathse.problems.data import prepare


def main(smk) -> None:
    setup_logging(smk.log[0])
    bench = dict(zip(smk.params.suites, smk.output.bench, strict=True))
    prepare(
        smk.params.seed,
        DataConfig.model_validate(smk.params.data),
        smk.output.seed,
        smk.output.pool,
        bench,
        smk.output.quarantine,
    )


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 - injected by Snakemake
