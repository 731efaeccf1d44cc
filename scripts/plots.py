"""Rule plots: the run's artifacts -> results/report/*.png, the stage table results/report/summary.rst and the
API-use page results/report/api_cost.html."""

from mathse.jobserver import delegate

delegate()  # in a local run, the job runs in the run's warm job server (src/mathse/jobserver.py)

from mathse.logs import setup_logging
from mathse.reporting.report import make_plots

FIGURES = ("table", "accuracy", "transitions", "training", "pool", "pass_at_k", "orm", "runtimes", "cost")


def main(smk) -> None:
    setup_logging(smk.log[0])
    make_plots(
        summary_path=smk.input.summary,
        score_paths=list(smk.input.scores),
        train_paths=list(smk.input.train),
        remain_paths=list(smk.input.remain),
        judgment_paths=list(smk.input.judgments),
        pool_path=smk.input.pool,
        benchmark_dir=smk.params.benchmarks,
        out={name: getattr(smk.output, name) for name in FIGURES},
        cost_paths=list(smk.input.cost) if "cost" in smk.input.keys() else [],
    )


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 - injected by Snakemake
