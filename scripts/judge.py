"""Rule judge: the ORM's verdict on every sampled path -> results/round_{r}/judgments.parquet, the judge's
agreement with math-verify -> judge_stats.parquet, and its API cost -> judge_cost.parquet."""

from mathse.jobserver import delegate

delegate()  # in a local run, the job runs in the run's warm job server (src/mathse/jobserver.py)

from mathse.config import VllmConfig
from mathse.judging import checks
from mathse.judging.orm import judge_config, run_judge
from mathse.logs import setup_logging


def main(smk) -> None:
    setup_logging(smk.log[0])
    checks.configure(**smk.params.answer_check)  # answer checks' time and memory limits
    # orm.trained: judge with this run's ORM
    cfg = judge_config(smk.params.orm, smk.params.orm_weights, smk.params.orm_base, smk.threads)
    run_judge(
        smk.input.rollouts,
        smk.input.problems,
        smk.output.judgments,
        cfg,
        smk.params.backbone,
        round_idx=int(smk.wildcards.round),
        stats_path=smk.output.stats,
        cost_path=smk.output.cost,
        vllm_cfg=VllmConfig.model_validate(smk.params.vllm) if smk.params.vllm else None,
    )


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 - injected by Snakemake
