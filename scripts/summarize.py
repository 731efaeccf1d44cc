"""Rule summarize: all stages' scores -> results/summary.parquet and the markdown table results/summary.md."""

import re

from mathse.logs import setup_logging
from mathse.summarize import summarize


def main(smk) -> None:
    setup_logging(smk.log[0])
    train = {re.search(r"(round_\d+)", p).group(1): p for p in smk.input.train}
    summarize(list(smk.input.scores), train, smk.output.summary, smk.output.table, smk.input.quarantine)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 - injected by Snakemake
