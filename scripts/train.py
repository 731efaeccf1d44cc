"""Rule train: fine-tune on the round's training set -> results/round_{r}/adapter/ (HF format)."""

from mathse.jobserver import delegate

delegate()  # in a local run, the job runs in the run's warm job server (src/mathse/jobserver.py)

from mathse.config import ModelConfig, TrainConfig
from mathse.experiments import matched_steps
from mathse.logs import setup_logging
from mathse.modeling import setup_torch
from mathse.training.metrics import watch_settings
from mathse.training.train import launch, round_train_config


def main(smk) -> None:
    setup_logging(smk.log[0])
    setup_torch(smk.threads)
    model = ModelConfig.model_validate(smk.params.model)
    init = list(smk.input.init) if not isinstance(smk.input.init, str) else [smk.input.init]
    kwargs = dict(
        train_path=smk.input.train,
        base_path=model.path,
        init_weights=init[0] if init else None,
        out_dir=smk.output[0],
        round_idx=int(smk.wildcards.round),
        seed=smk.params.seed,
        prompt_version=smk.params.prompt_version,
        dtype=model.torch_dtype,
        min_pixels=model.min_pixels,
        max_pixels=model.max_pixels,
    )
    # train.report_to and run.name from the config, not params: changing them reruns nothing
    watch, names = watch_settings(smk.config["run"], smk.config["train"], f"round_{kwargs['round_idx']}")
    kwargs |= names
    # train.match_steps_of: as many steps as the other run's rounds together
    matched = matched_steps(smk.input.match[0]) if smk.input.match else None
    cfg = round_train_config(TrainConfig.model_validate(smk.params.train | watch), kwargs["round_idx"], matched)
    # One process, or train.num_processes DDP processes (one per GPU of the job).
    launch(kwargs, cfg, smk.log[0])


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 - injected by Snakemake
