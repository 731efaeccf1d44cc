"""Rule reflect: the teacher rewrites wrong paths, the configured judge re-checks them
-> results/round_{r}/reflections.parquet and results/round_{r}/reflect_cost.parquet (API requests, tokens,
cache hits)."""

from mathse.jobserver import delegate

delegate()  # in a local run, the job runs in the run's warm job server (src/mathse/jobserver.py)

from mathse.config import ReflectionConfig, TeacherConfig, VllmConfig
from mathse.judging import checks
from mathse.judging.orm import judge_config
from mathse.judging.teacher import reflect
from mathse.logs import setup_logging


def main(smk) -> None:
    setup_logging(smk.log[0])
    checks.configure(**smk.params.answer_check)  # answer checks' time and memory limits
    # Re-checked by the judge the judge rule runs (this run's trained ORM with orm.trained).
    orm = judge_config(smk.params.orm, smk.params.orm_weights, smk.params.orm_base, smk.threads)
    reflect(
        list(smk.input.judgments),
        [smk.input.seed, smk.input.pool],
        smk.output.reflections,
        TeacherConfig.model_validate(smk.params.teacher),
        ReflectionConfig.model_validate(smk.params.reflection),
        round_idx=int(smk.wildcards.round),
        seed=smk.params.seed,
        cost_path=smk.output.cost,
        orm=orm,
        backbone=smk.params.backbone,
        vllm_cfg=VllmConfig.model_validate(smk.params.vllm) if smk.params.vllm else None,
    )


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 - injected by Snakemake
