"""Rule experiment_summary: every run's summary -> results/experiments/summary.parquet, comparison.md (means,
intervals over seeds, paired differences to the reference arm, compute) and accuracy.png."""

from mathse.jobserver import delegate

delegate()  # in a local run, the job runs in the run's warm job server (src/mathse/jobserver.py)

from mathse.experiments import summarize_experiment
from mathse.logs import setup_logging


def main(smk) -> None:
    setup_logging(smk.log[0])
    runs = [(arm, seed, path) for (arm, seed), path in zip(smk.params.runs, smk.input.summaries, strict=True)]
    summarize_experiment(runs, smk.params.reference, smk.output.summary, smk.output.comparison, smk.output.plot)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 - injected by Snakemake
