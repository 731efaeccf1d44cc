"""The summarize rule: the stage-by-stage accuracy table (base, round_0 = distilled, round_1..R).

Suites keep the order of eval.suites (the paper's layout: GPS, MathVista, MathVerse, MathVision), and with
more than one suite the table gains an `average` column, the unweighted mean of the suites' accuracies.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import polars as pl

from mathse.artifacts import read_table, scan_table, write_table, write_text_atomic

log = logging.getLogger(__name__)


def stage_key(stage: str) -> int:
    m = re.fullmatch(r"round_(\d+)", stage)
    return -1 if stage == "base" else int(m.group(1)) if m else 10**6


def summarize(
    score_paths: list[str],
    train_paths: dict[str, str],
    out_path: str,
    table_path: str,
    quarantine_path: str | None = None,
    adapter_paths: dict[str, str] | None = None,
) -> pl.DataFrame:
    """`adapter_paths`: stage -> trained weights folder, whose marker gives the stage's optimiser steps and
    tokens (the compute each stage cost, which a comparison must show)."""
    # Only the columns the table needs are read (score tables carry every response).
    scores = pl.concat([scan_table(p, "score").select("suite", "stage", "correct") for p in score_paths]).collect()
    sizes = {stage: pl.scan_parquet(p).select(pl.len()).collect().item() for stage, p in train_paths.items()}
    compute = {stage: train_compute(p) for stage, p in (adapter_paths or {}).items()}
    steps = {stage: c[0] for stage, c in compute.items()}
    tokens = {stage: c[1] for stage, c in compute.items()}
    suite_order = {s: i for i, s in enumerate(scores["suite"].unique(maintain_order=True))}
    summary = (
        scores.group_by("suite", "stage")
        .agg(accuracy=pl.col("correct").mean(), n=pl.len(), n_correct=pl.col("correct").sum())
        .with_columns(
            train_size=pl.col("stage").replace_strict(sizes, default=0, return_dtype=pl.Int64),
            train_steps=pl.col("stage").replace_strict(steps, default=0, return_dtype=pl.Int64),
            train_tokens=pl.col("stage").replace_strict(tokens, default=0, return_dtype=pl.Int64),
            order=pl.col("stage").map_elements(stage_key, return_dtype=pl.Int64),
            suite_order=pl.col("suite").replace_strict(suite_order, return_dtype=pl.Int64),
        )
        .sort("suite_order", "order")
        .drop("order", "suite_order")
    )
    summary = write_table(summary, out_path, "summary")
    table = markdown_table(summary)
    if quarantine_path:
        n_bad = read_table(quarantine_path, "quarantine").select("file", "row").unique().height
        table += f"\nQuarantined problem rows: {n_bad} (reasons in {quarantine_path}).\n"
    write_text_atomic(table, table_path)
    log.info("summary:\n%s", table)
    return summary


def train_compute(adapter_dir: str) -> tuple[int, int]:
    """(optimiser steps, tokens) of one training job, from the marker the train rule writes."""
    from mathse.modeling import TRAINED_MARKER

    info = json.loads((Path(adapter_dir) / TRAINED_MARKER).read_text())
    return int(info["steps"]), int(info.get("tokens", 0))


def markdown_table(summary: pl.DataFrame) -> str:
    """One row per stage, one accuracy column per suite in run order (the paper's layout), then their
    average when there are several, plus the training-set size."""
    suites = summary["suite"].unique(maintain_order=True).to_list()
    stages = sorted(summary["stage"].unique().to_list(), key=stage_key)
    average = len(suites) > 1
    names = suites + (["average"] if average else [])
    head = "| stage | train examples | " + " | ".join(names) + " |"
    lines = [head, "|" + "---|" * (len(names) + 2)]
    for stage in stages:
        rows = summary.filter(pl.col("stage") == stage)
        accuracies = []
        for s in suites:
            r = rows.filter(pl.col("suite") == s)
            accuracies.append(100 * r["accuracy"][0] if r.height else None)
        if average:
            present = [a for a in accuracies if a is not None]
            accuracies.append(sum(present) / len(present) if len(present) == len(suites) else None)
        cells = [f"{a:.1f}" if a is not None else "-" for a in accuracies]
        size = rows["train_size"][0]
        lines.append(f"| {stage} | {size} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
