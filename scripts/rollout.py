"""Rule rollout (or rollout_part): round r-1's model samples k paths per remaining problem ->
results/round_{r}/rollouts.parquet and its generation stats rollout_stats.parquet (a part: every n-th shard ->
rollouts.part{p}.parquet, rollout_stats.part{p}.parquet)."""

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
        round_idx=int(smk.wildcards.round),
        seed=smk.params.seed,
        part=(int(smk.wildcards.part), smk.params.parts) if "part" in smk.wildcards.keys() else (0, 1),
        vllm_cfg=VllmConfig.model_validate(smk.params.vllm) if smk.params.vllm else None,
        stats_out=smk.output.stats,
    )


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 - injected by Snakemake
