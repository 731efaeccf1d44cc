"""Rule assemble: cumulative training set and remaining pool -> results/round_{r}/{train,remain}.parquet."""

from mathse.jobserver import delegate

delegate()  # in a local run, the job runs in the run's warm job server (src/mathse/jobserver.py)

from mathse.config import AssembleConfig
from mathse.logs import setup_logging
from mathse.training.assemble import assemble_round, assemble_round0


def main(smk) -> None:
    setup_logging(smk.log[0])
    r = int(smk.wildcards.round)
    inp = smk.input
    if r == 0:
        assemble_round0(inp.distilled, inp.seed, inp.pool, smk.output.train, smk.output.remain)
        return
    assemble_round(
        inp.prev_train,
        inp.prev_remain,
        inp.judgments if "judgments" in inp.keys() else None,
        [inp.reflections] if "reflections" in inp.keys() else [],
        [inp.seed, inp.pool],
        smk.output.train,
        smk.output.remain,
        AssembleConfig.model_validate(smk.params.assemble),
        round_idx=r,
    )


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 - injected by Snakemake
