"""Rule orm_data: correct and wrong paths, the wrong ones annotated by the teacher -> results/orm/train.parquet
(ORM prompt -> JSON verdict), results/orm/eval_paths.parquet (held-out suite problems), the teacher's API cost
and the paths whose annotation was unusable (quarantine)."""

from mathse.jobserver import delegate

delegate()  # in a local run, the job runs in the run's warm job server (src/mathse/jobserver.py)

from mathse.config import OrmConfig, TeacherConfig
from mathse.judging import checks
from mathse.judging.orm_train import build_orm_data
from mathse.logs import setup_logging


def main(smk) -> None:
    setup_logging(smk.log[0])
    checks.configure(**smk.params.answer_check)  # answer checks' time and memory limits
    build_orm_data(
        [smk.input.seed, smk.input.pool],
        list(smk.input.bench),
        smk.output.train,
        smk.output.eval,
        OrmConfig.model_validate(smk.params.orm),
        seed=smk.params.seed,
        teacher=TeacherConfig.model_validate(smk.params.teacher),
        cost_out=smk.output.cost,
        quarantine_out=smk.output.quarantine,
        binary_out=smk.output.binary,
        rollouts=(smk.input.rollouts[:1], smk.input.rollouts[1:]) if smk.input.rollouts else None,
    )


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 - injected by Snakemake
