"""Rule import_benchmark: a benchmark's local files -> results/data/bench/{suite}.parquet, images beside it,
{suite}.quarantine.jsonl (rows that could not be used, with the reason) and {suite}.contamination.jsonl."""

from mathse.jobserver import delegate

delegate()  # in a local run, the job runs in the run's warm job server (src/mathse/jobserver.py)

from mathse.config import BenchmarkSource
from mathse.logs import setup_logging
from mathse.problems.benchmarks import import_benchmark


def main(smk) -> None:
    setup_logging(smk.log[0])
    cfg = BenchmarkSource.model_validate(smk.params.benchmark)
    import_benchmark(
        cfg.format,
        cfg.path,
        smk.output.problems,
        where=cfg.where or None,
        limit=cfg.limit,
        pool=[smk.input.seed, smk.input.pool],
        contamination=smk.params.contamination,
    )


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 - injected by Snakemake
