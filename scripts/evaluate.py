"""Rule evaluate: greedy answers of a stage's model on a suite -> results/{stage}/scores/{suite}.parquet, and
the job's generation stats -> results/{stage}/evaluate_stats/{suite}.parquet."""

from mathse.jobserver import delegate

delegate()  # in a local run, the job runs in the run's warm job server (src/mathse/jobserver.py)

from mathse.config import EvalConfig, ModelConfig, VllmConfig
from mathse.generation.rollout import run_evaluate
from mathse.judging import checks
from mathse.logs import setup_logging
from mathse.modeling import setup_torch


def main(smk) -> None:
    setup_logging(smk.log[0])
    checks.configure(**smk.params.answer_check)  # answer checks' time and memory limits
    setup_torch(smk.threads)
    weights = smk.input.weights
    weights = weights if isinstance(weights, str) else (list(weights) or [None])[0]
    run_evaluate(
        smk.input.suite,
        weights,
        smk.output[0],
        ModelConfig.model_validate(smk.params.model),
        EvalConfig.model_validate(smk.params.eval),
        suite=smk.wildcards.suite,
        stage=smk.wildcards.stage,
        seed=smk.params.seed,
        prompt_version=smk.params.prompt_version,
        scoring=smk.params.scoring,
        vllm_cfg=VllmConfig.model_validate(smk.params.vllm) if smk.params.vllm else None,
        stats_out=smk.output.stats,
    )


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 - injected by Snakemake
