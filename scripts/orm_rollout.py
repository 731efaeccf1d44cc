"""Rule orm_rollout (orm.paths: sampled): the round-0 model samples orm.samples_per_problem paths per problem of
the seed part or of a suite -> results/orm/rollouts/{seed,suite_NAME}.parquet, the ORM's paths to label."""

from mathse.jobserver import delegate

delegate()  # in a local run, the job runs in the run's warm job server (src/mathse/jobserver.py)

from mathse.config import ModelConfig, RolloutConfig, VllmConfig
from mathse.generation.rollout import run_rollout
from mathse.logs import setup_logging
from mathse.modeling import setup_torch


def main(smk) -> None:
    setup_logging(smk.log[0])
    setup_torch(smk.threads)
    run_rollout(
        smk.input.problems,
        smk.input.weights,
        smk.output[0],
        ModelConfig.model_validate(smk.params.model),
        RolloutConfig.model_validate(smk.params.rollout),
        round_idx=0,  # the round-0 model's paths
        seed=smk.params.seed,
        vllm_cfg=VllmConfig.model_validate(smk.params.vllm) if smk.params.vllm else None,
    )


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 - injected by Snakemake
