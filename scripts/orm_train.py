"""Rule orm_train (and orm_train_binary): fine-tune the ORM from the backbone or its own tiny model on
results/orm/train.parquet -> results/orm/adapter/ (first on the final lines alone with orm.final_line_steps)."""

from mathse.jobserver import delegate

delegate()  # in a local run, the job runs in the run's warm job server (src/mathse/jobserver.py)

from mathse.config import ModelConfig, TrainConfig
from mathse.judging.orm_train import train_orm
from mathse.logs import setup_logging
from mathse.modeling import setup_torch
from mathse.prompts import RAW_PROMPT_VERSION
from mathse.training.metrics import watch_settings


def main(smk) -> None:
    setup_logging(smk.log[0])
    setup_torch(smk.threads)
    model = ModelConfig.model_validate(smk.params.model)
    kwargs = dict(
        train_path=smk.input.train,
        base_path=smk.input.model,  # the backbone, or the ORM's own tiny model (orm.tiny)
        init_weights=None,
        out_dir=smk.output[0],
        round_idx=0,  # seeds (seed, 0, ...) as round 0; the data differ, so the streams need not
        seed=smk.params.seed,
        prompt_version=RAW_PROMPT_VERSION,  # the row's question is the whole ORM prompt
        dtype=model.torch_dtype,
        min_pixels=model.min_pixels,
        max_pixels=model.max_pixels,
    )
    # train.report_to and run.name from the config, not params: changing them reruns nothing
    job = "orm_binary" if smk.rule.endswith("orm_train_binary") else "orm"
    watch, names = watch_settings(smk.config["run"], smk.config["orm"]["train"], job)
    cfg = TrainConfig.model_validate(smk.params.train | watch)
    steps, batch = smk.params.final_line_steps, smk.params.final_line_batch_size
    train_orm(kwargs | names, cfg, steps, smk.log[0], final_line_batch_size=batch)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 - injected by Snakemake
