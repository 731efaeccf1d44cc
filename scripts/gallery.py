"""Rule gallery: one round's paths, ORM verdicts and reflections -> results/report/gallery/round_{r}.html."""

from mathse.jobserver import delegate

delegate()  # in a local run, the job runs in the run's warm job server (src/mathse/jobserver.py)

from mathse.logs import setup_logging
from mathse.reporting.report import make_gallery


def main(smk) -> None:
    setup_logging(smk.log[0])
    make_gallery(
        smk.input.judgments,
        list(smk.input.reflections),
        [smk.input.seed, smk.input.pool],
        smk.output[0],
        round_idx=int(smk.wildcards.round),
        n_examples=smk.params.n_examples,
    )


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 - injected by Snakemake
