"""Rule rollout: round r-1's model samples k paths per remaining problem -> results/round_{r}/rollouts.parquet."""

from mathse.config import ModelConfig, RolloutConfig, VllmConfig
from mathse.logs import setup_logging
from mathse.modeling import setup_torch
from mathse.rollout import run_rollout


def main(smk) -> None:
    setup_logging(smk.log[0])
    setup_torch(smk.threads)
    run_rollout(
        smk.input.problems,
        smk.input.weights,
        smk.output[0],
        ModelConfig.model_validate(smk.params.model),
        RolloutConfig.model_validate(smk.params.rollout),
        round_idx=int(smk.wildcards.round),
        seed=smk.params.seed,
        vllm_cfg=VllmConfig.model_validate(smk.params.vllm) if smk.params.vllm else None,
    )


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 - injected by Snakemake
