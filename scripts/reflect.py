"""Rule reflect: the teacher rewrites wrong paths, the ORM re-checks them -> results/round_{r}/reflections.parquet
and results/round_{r}/reflect_cost.parquet (API requests, tokens, cache hits)."""

from mathse import checks
from mathse.config import ReflectionConfig, TeacherConfig
from mathse.logs import setup_logging
from mathse.teacher import reflect


def main(smk) -> None:
    setup_logging(smk.log[0])
    checks.configure(**smk.params.answer_check)  # answer checks' time and memory limits
    reflect(
        list(smk.input.judgments),
        [smk.input.seed, smk.input.pool],
        smk.output.reflections,
        TeacherConfig.model_validate(smk.params.teacher),
        ReflectionConfig.model_validate(smk.params.reflection),
        round_idx=int(smk.wildcards.round),
        seed=smk.params.seed,
        cost_path=smk.output.cost,
    )


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 - injected by Snakemake
