"""Rule orm_evaluate: the trained ORM judges held-out labelled paths -> results/orm/eval.parquet and the
paper's metrics (accuracy on correct / wrong paths, overall, error-step agreement) -> results/orm/eval.md."""

from mathse.jobserver import delegate

delegate()  # in a local run, the job runs in the run's warm job server (src/mathse/jobserver.py)

from mathse.config import OrmConfig
from mathse.judging import checks
from mathse.judging.orm_train import evaluate_orm
from mathse.logs import setup_logging
from mathse.modeling import setup_torch


def main(smk) -> None:
    setup_logging(smk.log[0])
    checks.configure(**smk.params.answer_check)  # answer checks' time and memory limits
    setup_torch(smk.threads)
    evaluate_orm(
        smk.input.eval,
        smk.input.model,
        smk.input.weights,
        smk.output.scores,
        smk.output.table,
        OrmConfig.model_validate(smk.params.orm),
    )


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 - injected by Snakemake
