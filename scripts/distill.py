"""Rule distill: the teacher solves the seed part (and the pool, with teacher.distill_pool)
-> results/round_0/distilled.parquet (with ORM verdicts)
and results/round_0/distill_cost.parquet (API requests, tokens, cache hits)."""

from mathse.jobserver import delegate

delegate()  # in a local run, the job runs in the run's warm job server (src/mathse/jobserver.py)

from mathse.config import TeacherConfig
from mathse.judging import checks
from mathse.judging.teacher import distill
from mathse.logs import setup_logging


def main(smk) -> None:
    setup_logging(smk.log[0])
    checks.configure(**smk.params.answer_check)  # answer checks' time and memory limits
    distill(
        list(smk.input.problems),
        smk.output.distilled,
        TeacherConfig.model_validate(smk.params.teacher),
        smk.params.seed,
        cost_path=smk.output.cost,
    )


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 - injected by Snakemake
