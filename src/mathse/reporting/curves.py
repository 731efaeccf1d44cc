"""Training curves and generation throughput across a run's rounds: tables, the report's figures, `mathse curves`.

Each round's training job writes its per-step metrics beside its weights (`mathse.training.metrics`); here they are put
on one axis. With `train.init: previous` round r continues from round r-1's weights, so its steps continue
from where round r-1 ended (`global_step`); a round that restarts from the base model (`init: base`, and
round 0) starts again from step 1. Accuracy per stage comes from the run's summary, throughput and the share
of paths cut at max_new_tokens from the rollout and evaluate jobs' generation_stats.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import polars as pl

from mathse.artifacts import empty, read_table
from mathse.reporting.summarize import stage_key
from mathse.training.metrics import METRICS_FILE

log = logging.getLogger(__name__)


def round_curves(adapter_dirs: list[str | Path]) -> pl.DataFrame:
    """The train_metrics of the rounds' training jobs (their weights folders), with `global_step`: the step
    counted from the start of the chain of rounds it continues (train.init: previous), and `init`."""
    from mathse.modeling import TRAINED_MARKER

    frames, missing = [], []
    for folder in adapter_dirs:
        path = Path(folder) / METRICS_FILE
        if not path.exists():  # trained before the metrics existed
            missing.append(str(folder))
            continue
        init = json.loads((Path(folder) / TRAINED_MARKER).read_text()).get("init", "base")
        init = "base" if init == "base" else "previous"  # the marker names the weights it started from
        frames.append(read_table(path, "train_metrics").with_columns(init=pl.lit(init)))
    if missing:
        log.warning("no %s in %s (trained by an earlier version): left out of the curves", METRICS_FILE, missing)
    if not frames:
        return empty("train_metrics").with_columns(init=pl.lit(None, pl.String), global_step=pl.lit(0, pl.Int64))
    rows = pl.concat(frames).filter(pl.col("round").is_not_null()).sort("round", "step")
    offsets, end = {}, 0
    for r, init, steps in rows.group_by("round", maintain_order=True).agg(pl.col("init").first(), pl.len()).rows():
        offsets[r] = end if init == "previous" else 0
        end = offsets[r] + steps
    offset = pl.col("round").replace_strict(offsets, return_dtype=pl.Int64)
    return rows.with_columns(global_step=pl.col("step") + offset)


def curve_table(curves: pl.DataFrame, summary: pl.DataFrame | None) -> pl.DataFrame:
    """One row per stage: its training (steps, where on the shared axis, first and last loss, throughput) and
    its accuracy on each suite (%). The base model trained nothing."""
    per_round = curves.group_by("round").agg(
        init=pl.col("init").first(),
        steps=pl.len(),
        first_step=pl.col("global_step").min(),
        last_step=pl.col("global_step").max(),
        loss_first=pl.col("loss").first(),
        loss_last=pl.col("loss").last(),
        loss_min=pl.col("loss").min(),
        tokens_per_second=pl.col("tokens").sum() / pl.col("step_seconds").sum(),
        padding_share=1 - pl.col("tokens").sum() / (pl.col("tokens") / (1 - pl.col("padding_share"))).sum(),
    )
    table = per_round.with_columns(stage=pl.format("round_{}", pl.col("round")))
    if summary is not None and summary.height:
        acc = summary.select("stage", "suite", accuracy=100 * pl.col("accuracy")).pivot(
            on="suite", index="stage", values="accuracy"
        )
        table = acc.join(table, on="stage", how="full", coalesce=True)
    table = table.with_columns(order=pl.col("stage").map_elements(stage_key, return_dtype=pl.Int64))
    return table.sort("order").drop("order", "round")


def generation_table(stats: pl.DataFrame) -> pl.DataFrame:
    """Per generation job kind and stage: paths, tokens/s, paths/s and the share cut at max_new_tokens (the
    evaluate jobs of a stage, one per suite, together)."""
    seconds = pl.when(pl.col("seconds").sum() > 0).then(pl.col("seconds").sum())  # null: all shards resumed
    rates = stats.group_by("rule", "stage").agg(
        paths=pl.col("paths").sum(),
        cut_share=pl.when(pl.col("paths").sum() > 0).then(pl.col("cut").sum() / pl.col("paths").sum()),
        tokens_per_second=pl.col("generated_tokens").sum() / seconds,
        paths_per_second=pl.col("generated_paths").sum() / seconds,
        max_new_tokens=pl.col("max_new_tokens").max(),
    )
    order = pl.col("stage").map_elements(stage_key, return_dtype=pl.Int64)
    return rates.sort(pl.col("rule") != "rollout", order)


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def markdown(table: pl.DataFrame, percent: list[str] = ()) -> str:
    """`table` as a markdown table; the `percent` columns with one decimal."""
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * table.width]
    for row in table.iter_rows(named=True):
        cells = [f"{v:.1f}" if c in percent and v is not None else _cell(v) for c, v in row.items()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def read_run(results: str | Path) -> tuple[pl.DataFrame, pl.DataFrame | None, pl.DataFrame]:
    """A results folder's round curves, summary (None before summarize ran) and generation stats."""
    root = Path(results)
    rounds = sorted(root.glob("round_*/adapter"), key=lambda p: stage_key(p.parent.name))
    summary = read_table(root / "summary.parquet", "summary") if (root / "summary.parquet").exists() else None
    stat_files = sorted(root.glob("round_*/rollout_stats.parquet")) + sorted(root.glob("*/evaluate_stats/*.parquet"))
    stats = pl.concat([read_table(p, "generation_stats") for p in stat_files]) if stat_files else None
    return round_curves(rounds), summary, stats if stats is not None else empty("generation_stats")


# ---- figures -------------------------------------------------------------------------------------


def plot_curves(curves: pl.DataFrame, summary: pl.DataFrame | None, path: str | Path) -> None:
    """Left: every round's loss per optimiser step on one axis (continuing across rounds that start from the
    previous round's weights); right: test accuracy per stage and suite."""
    from mathse.reporting.figures import _pyplot, _save

    plt = _pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [1.6, 1]})
    colors = plt.get_cmap("viridis")
    rounds = sorted(curves["round"].unique().to_list())
    for i, r in enumerate(rounds):
        c = curves.filter(pl.col("round") == r).sort("step")
        color = colors(i / max(len(rounds) - 1, 1))
        ax1.plot(c["global_step"], c["loss"], color=color, marker="." if c.height < 30 else None, label=f"round_{r}")
        if r and c["global_step"][0] > 1:  # where the round took over from the previous one
            ax1.axvline(c["global_step"][0] - 0.5, color="#bbbbbb", lw=0.8, ls="--")
    ax1.set_xlabel("optimiser step (continuing across rounds that start from the previous round)")
    ax1.set_ylabel("training loss")
    ax1.set_title("Training loss per round")
    ax1.grid(alpha=0.3)
    if rounds:
        ax1.legend(fontsize=8, ncol=2)
    else:
        ax1.text(0.5, 0.5, "no training metrics", ha="center", va="center", transform=ax1.transAxes)
    if summary is not None and summary.height:
        stages = sorted(summary["stage"].unique().to_list(), key=stage_key)
        for suite in summary["suite"].unique(maintain_order=True).to_list():
            s = summary.filter(pl.col("suite") == suite)
            acc = dict(zip(s["stage"], s["accuracy"], strict=True))
            ax2.plot(stages, [100 * acc.get(st, float("nan")) for st in stages], marker="o", label=suite)
        ax2.set_ylim(0, 105)
        ax2.legend(title="suite", fontsize=8)
        ax2.tick_params(axis="x", labelsize=8)
    ax2.set_ylabel("test accuracy (%)")
    ax2.set_title("Accuracy per stage")
    ax2.grid(alpha=0.3)
    _save(fig, path)


def plot_generation(stats: pl.DataFrame, path: str | Path) -> None:
    """Tokens per second and the share of paths cut at max_new_tokens, per rollout round and evaluated stage."""
    from mathse.reporting.figures import _pyplot, _save

    plt = _pyplot()
    table = generation_table(stats)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.6))
    for rule, color, shift in (("rollout", "#4c72b0", -0.2), ("evaluate", "#55a868", 0.2)):
        t = table.filter(pl.col("rule") == rule)
        xs = [stage_key(s) + shift for s in t["stage"]]
        label = "rollout (sampled)" if rule == "rollout" else "evaluate (greedy)"
        ax1.bar(xs, t["tokens_per_second"].fill_null(0).to_list(), width=0.4, color=color, label=label)
        ax2.bar(xs, [100 * v for v in t["cut_share"].fill_null(0)], width=0.4, color=color, label=label)
    stages = sorted(table["stage"].unique().to_list(), key=stage_key)
    for ax in (ax1, ax2):
        ax.set_xticks([stage_key(s) for s in stages], stages, fontsize=8)
        ax.set_xlabel("model generating")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3, axis="y")
    ax1.set_ylabel("new tokens per second")
    ax1.set_title("Generation throughput")
    ax2.set_ylabel("% of paths")
    ax2.set_ylim(0, 130)  # head room for the legend above 100%
    ax2.set_yticks(range(0, 101, 20))
    ax2.set_title("Paths cut at max_new_tokens")
    _save(fig, path)


def make_curves(
    adapter_dirs: list[str], summary_path: str, stats_paths: list[str], curves_png: str, generation_png: str
) -> pl.DataFrame:
    """The curves rule: the loss-curve figure with accuracy beside it, and the generation figure."""
    curves = round_curves(adapter_dirs)
    summary = read_table(summary_path, "summary")
    stats = pl.concat([read_table(p, "generation_stats") for p in stats_paths] or [empty("generation_stats")])
    plot_curves(curves, summary, curves_png)
    plot_generation(stats, generation_png)
    table = curve_table(curves, summary)
    suites = summary["suite"].unique().to_list()
    log.info("training curves:\n%s\ngeneration:\n%s", markdown(table, suites), markdown(generation_table(stats)))
    return table
