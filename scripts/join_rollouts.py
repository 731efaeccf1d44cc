"""Rule join_rollouts (rollout.parallel_jobs > 1): the round's rollout parts -> results/round_{r}/rollouts.parquet,
and their generation stats -> rollout_stats.parquet."""

from mathse.jobserver import delegate

delegate()  # in a local run, the job runs in the run's warm job server (src/mathse/jobserver.py)

from mathse.generation.rollout import join_generation_stats, join_rollout_parts
from mathse.logs import setup_logging


def main(smk) -> None:
    setup_logging(smk.log[0])
    join_rollout_parts(smk.input.problems, list(smk.input.parts), smk.output[0])
    join_generation_stats(list(smk.input.stats), smk.output.stats)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 - injected by Snakemake
