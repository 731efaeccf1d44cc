"""The report's matplotlib figures, each drawn from one of `mathse.reporting.report_tables`' tables."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from mathse.reporting.report_tables import ORIGINS, TRANSITIONS
from mathse.reporting.summarize import stage_key

ORIGIN_LABELS = {"distill": "distilled (teacher)", "self": "self-generated", "reflect": "reflected"}
COLORS = {
    "distill": "#4c72b0",
    "self": "#55a868",
    "reflect": "#dd8452",
    "correct→correct": "#55a868",
    "wrong→correct": "#a6d96a",
    "correct→wrong": "#d7301f",
    "wrong→wrong": "#bdbdbd",
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)


def plot_accuracy(summary: pl.DataFrame, path: str) -> None:
    plt = _pyplot()
    stages = sorted(summary["stage"].unique().to_list(), key=stage_key)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for suite in sorted(summary["suite"].unique().to_list()):
        s = summary.filter(pl.col("suite") == suite)
        acc = dict(zip(s["stage"], s["accuracy"], strict=True))
        ys = [100 * acc[st] if st in acc else float("nan") for st in stages]
        ax.plot(stages, ys, marker="o", label=suite)
        for x, y in zip(stages, ys, strict=True):
            ax.annotate(f"{y:.1f}", (x, y), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 105)
    ax.set_title("Test accuracy per stage")
    ax.legend(title="suite", fontsize=8)
    ax.grid(alpha=0.3)
    _save(fig, path)


def _stacked_bars(ax, labels: list[str], series: dict[str, list[float]], colors: dict[str, str], names=None):
    bottom = [0.0] * len(labels)
    for key, values in series.items():
        ax.bar(labels, values, bottom=bottom, color=colors.get(key), label=(names or {}).get(key, key))
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    for x, total in zip(labels, bottom, strict=True):
        ax.annotate(f"{total:g}", (x, total), textcoords="offset points", xytext=(0, 3), ha="center", fontsize=8)
    # Head room for the legend above the tallest bar.
    ax.set_ylim(0, 1.35 * max(bottom + [1.0]))
    return bottom


def plot_training_growth(counts: pl.DataFrame, path: str) -> None:
    plt = _pyplot()
    rounds = sorted(counts["round"].unique().to_list())
    labels = [f"round_{r}" for r in rounds]
    series = {
        o: [counts.filter((pl.col("round") == r) & (pl.col("origin") == o))["n"].sum() for r in rounds] for o in ORIGINS
    }
    fig, ax = plt.subplots(figsize=(6, 3.6))
    _stacked_bars(ax, labels, series, COLORS, ORIGIN_LABELS)
    ax.set_ylabel("training examples")
    ax.set_title("Training set per round, by origin")
    ax.legend(fontsize=8, loc="upper left")
    _save(fig, path)


def plot_pool(sizes: pl.DataFrame, path: str) -> None:
    plt = _pyplot()
    labels = ["pool (start)" if r < 0 else f"round_{r}" for r in sizes["round"]]
    fig, ax = plt.subplots(figsize=(6, 3.4))
    ax.bar(labels, sizes["remaining"].to_list(), color="#8172b2")
    for x, y in zip(labels, sizes["remaining"], strict=True):
        ax.annotate(str(y), (x, y), textcoords="offset points", xytext=(0, 3), ha="center", fontsize=8)
    ax.set_ylabel("unsolved problems")
    ax.set_title("Remaining pool after each round")
    _save(fig, path)


def plot_pass_at_k(table: pl.DataFrame, path: str) -> None:
    plt = _pyplot()
    labels = [f"round_{r}" for r in table["round"]]
    k = table["k"].max() if table.height else 0
    xs = range(len(labels))
    fig, ax = plt.subplots(figsize=(6, 3.4))
    ax.bar([x - 0.2 for x in xs], [100 * v for v in table["pass_at_1"]], width=0.4, label="pass@1", color="#4c72b0")
    ax.bar([x + 0.2 for x in xs], [100 * v for v in table["pass_at_k"]], width=0.4, label=f"pass@{k}", color="#55a868")
    ax.set_xticks(list(xs), labels)
    ax.set_ylim(0, 105)
    ax.set_ylabel("% of remaining problems")
    ax.set_title("Rollouts: pass@1 and pass@k (ORM verdict)")
    ax.legend(fontsize=8)
    _save(fig, path)


def plot_orm(table: pl.DataFrame, path: str) -> None:
    plt = _pyplot()
    labels = [f"round_{r}" for r in table["round"]]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 4))
    _stacked_bars(
        ax1,
        labels,
        {"CORRECT": table["orm_correct"].to_list(), "WRONG": table["orm_wrong"].to_list()},
        {"CORRECT": "#55a868", "WRONG": "#c44e52"},
    )
    ax1.set_title("ORM verdicts per round")
    ax1.set_ylabel("paths")
    ax1.legend(fontsize=8, loc="upper right")
    parts = {
        "agree: correct": "both_correct",
        "agree: wrong": "both_wrong",
        "ORM correct, answer wrong": "orm_correct_answer_wrong",
        "ORM wrong, answer correct": "orm_wrong_answer_correct",
    }
    colors = dict(zip(parts, ["#55a868", "#bdbdbd", "#d7301f", "#fdae61"], strict=True))
    totals = _stacked_bars(ax2, labels, {k: table[v].to_list() for k, v in parts.items()}, colors)
    for x, a, t in zip(labels, table["agreement"], totals, strict=True):
        ax2.annotate(f"{100 * a:.0f}% agree", (x, t), textcoords="offset points", xytext=(0, 13), ha="center")
    ax2.set_title("ORM vs math-verify answer check")
    ax2.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2)
    _save(fig, path)


def plot_transitions(counts: pl.DataFrame, path: str) -> None:
    plt = _pyplot()
    suites = sorted(counts["suite"].unique().to_list()) or [""]
    fig, axes = plt.subplots(1, len(suites), figsize=(6.5 * len(suites), 3.8), squeeze=False)
    for ax, suite in zip(axes[0], suites, strict=True):
        sub = counts.filter(pl.col("suite") == suite)
        _stacked_bars(ax, sub["step"].to_list(), {t: sub[t].to_list() for t in TRANSITIONS}, COLORS)
        ax.set_title(f"Test problems between stages ({suite})")
        ax.set_ylabel("problems")
        ax.tick_params(axis="x", labelsize=8)
        ax.legend(fontsize=7, ncol=2, loc="upper left")
    _save(fig, path)


def plot_runtimes(table: pl.DataFrame, path: str) -> None:
    plt = _pyplot()
    per_rule = table.group_by("rule").agg(s=pl.col("s").sum(), jobs=pl.len()).sort("s")
    fig, ax = plt.subplots(figsize=(6, 0.6 + 0.35 * max(per_rule.height, 1)))
    ax.barh(per_rule["rule"].to_list(), per_rule["s"].to_list(), color="#64b5cd")
    for y, (s, n) in enumerate(zip(per_rule["s"], per_rule["jobs"], strict=True)):
        ax.annotate(f"{s:.1f} s ({n} job{'s' if n > 1 else ''})", (s, y), xytext=(3, -3), textcoords="offset points")
    ax.set_xlabel("wall-clock seconds, all jobs of the rule")
    ax.set_title("Runtime per rule (Snakemake benchmark files)")
    ax.set_xlim(0, 1.3 * max(per_rule["s"].max() or 1.0, 1.0))
    _save(fig, path)
