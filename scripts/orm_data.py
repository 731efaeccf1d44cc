"""Rule orm_data: labelled correct and wrong paths -> results/orm/train.parquet (ORM prompt -> JSON verdict)
and results/orm/eval_paths.parquet (held-out suite problems)."""

from mathse.config import OrmConfig
from mathse.logs import setup_logging
from mathse.orm_train import build_orm_data


def main(smk) -> None:
    setup_logging(smk.log[0])
    build_orm_data(
        [smk.input.seed, smk.input.pool],
        list(smk.input.bench),
        smk.output.train,
        smk.output.eval,
        OrmConfig.model_validate(smk.params.orm),
        seed=smk.params.seed,
    )


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 - injected by Snakemake
