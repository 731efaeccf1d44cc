"""The report's tables, computed from a run's artifacts: what the figures draw and the `mathse` CLI prints."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl

from mathse.artifacts import read_table
from mathse.reporting.summarize import stage_key

TRANSITIONS = ["correct→correct", "wrong→correct", "correct→wrong", "wrong→wrong"]
ORIGINS = ["distill", "self", "reflect"]


def round_of(path: str | Path) -> int:
    m = re.search(r"round_(\d+)", str(path))
    if not m:
        raise ValueError(f"{path}: no round_<r> in the path")
    return int(m.group(1))


def stage_table_rst(summary: pl.DataFrame) -> str:
    """The stage-by-stage accuracy table (one column per suite) as an reStructuredText list-table."""
    suites = sorted(summary["suite"].unique().to_list())
    stages = sorted(summary["stage"].unique().to_list(), key=stage_key)
    lines = [".. list-table:: Accuracy (%) per stage", "   :header-rows: 1", ""]
    lines.append("   * - stage\n     - train examples\n" + "".join(f"     - {s}\n" for s in suites).rstrip("\n"))
    for stage in stages:
        rows = summary.filter(pl.col("stage") == stage)
        cells = []
        for s in suites:
            r = rows.filter(pl.col("suite") == s)
            cells.append(f"{100 * r['accuracy'][0]:.1f} ({r['n_correct'][0]}/{r['n'][0]})" if r.height else "-")
        lines.append(f"   * - {stage}\n     - {rows['train_size'][0]}\n" + "\n".join(f"     - {c}" for c in cells))
    return "\n".join(lines) + "\n"


def origin_counts(train_paths: list[str]) -> pl.DataFrame:
    """Training-set size per round split by origin (distill / self / reflect): round, origin, n."""
    frames = []
    for p in train_paths:
        t = read_table(p, "train")
        frames.append(t.group_by("origin").agg(n=pl.len()).with_columns(round=pl.lit(round_of(p), pl.Int64)))
    grid = pl.DataFrame({"round": sorted(round_of(p) for p in train_paths)}).join(
        pl.DataFrame({"origin": ORIGINS}), how="cross"
    )
    counts = pl.concat(frames) if frames else pl.DataFrame(schema={"origin": pl.String, "n": pl.UInt32})
    return (
        grid.join(counts.select("round", "origin", "n"), on=["round", "origin"], how="left")
        .with_columns(pl.col("n").fill_null(0).cast(pl.Int64))
        .sort("round", pl.col("origin").replace_strict({o: i for i, o in enumerate(ORIGINS)}, return_dtype=pl.Int64))
    )


def pool_sizes(remain_paths: list[str], pool_size: int | None = None) -> pl.DataFrame:
    """Problems still unsolved after each round (round -1: the whole pool, before the loop)."""
    rows = [{"round": round_of(p), "remaining": read_table(p, "problem").height} for p in remain_paths]
    if pool_size is not None:
        rows.append({"round": -1, "remaining": pool_size})
    return pl.DataFrame(rows, schema={"round": pl.Int64, "remaining": pl.Int64}).sort("round")


def pass_at_k(judgments: pl.DataFrame) -> pl.DataFrame:
    """Per round: problems, k, pass@1 (mean over paths) and pass@k (any of the k paths judged CORRECT)."""
    per_problem = judgments.group_by("round", "problem_id").agg(
        k=pl.len(), n_ok=(pl.col("status") == "CORRECT").sum(), any_ok=(pl.col("status") == "CORRECT").any()
    )
    return (
        per_problem.group_by("round")
        .agg(
            problems=pl.len(),
            k=pl.col("k").max(),
            pass_at_1=(pl.col("n_ok") / pl.col("k")).mean(),
            pass_at_k=pl.col("any_ok").mean(),
        )
        .sort("round")
    )


def orm_agreement(judgments: pl.DataFrame) -> pl.DataFrame:
    """Per round: ORM verdicts against math-verify's answer check (status vs answer_correct)."""
    ok = pl.col("status") == "CORRECT"
    ans = pl.col("answer_correct")
    return (
        judgments.group_by("round")
        .agg(
            paths=pl.len(),
            orm_correct=ok.sum(),
            orm_wrong=(~ok).sum(),
            both_correct=(ok & ans).sum(),
            both_wrong=(~ok & ~ans).sum(),
            orm_correct_answer_wrong=(ok & ~ans).sum(),
            orm_wrong_answer_correct=(~ok & ans).sum(),
        )
        .with_columns(agreement=(pl.col("both_correct") + pl.col("both_wrong")) / pl.col("paths"))
        .sort("round")
    )


def flips(scores_a: pl.DataFrame, scores_b: pl.DataFrame) -> pl.DataFrame:
    """Each test problem's correctness in two stages: suite, problem_id, before, after, transition."""
    a = scores_a.select("suite", "problem_id", before=pl.col("correct"), extracted_before="extracted")
    b = scores_b.select("suite", "problem_id", "answer", after=pl.col("correct"), extracted_after="extracted")
    word = {True: "correct", False: "wrong"}
    return (
        a.join(b, on=["suite", "problem_id"], how="inner")
        .with_columns(
            transition=pl.col("before").replace_strict(word, return_dtype=pl.String)
            + "→"
            + pl.col("after").replace_strict(word, return_dtype=pl.String)
        )
        .sort("suite", "problem_id")
    )


def transition_counts(scores: pl.DataFrame) -> pl.DataFrame:
    """The paper's Figure 2: per suite and pair of consecutive stages, how many test problems moved where."""
    stages = sorted(scores["stage"].unique().to_list(), key=stage_key)
    out = []
    for before, after in zip(stages, stages[1:], strict=False):
        f = flips(scores.filter(pl.col("stage") == before), scores.filter(pl.col("stage") == after))
        for suite in sorted(f["suite"].unique().to_list()):
            sub = f.filter(pl.col("suite") == suite)
            row = {"suite": suite, "step": f"{before}→{after}"}
            row.update({t: int((sub["transition"] == t).sum()) for t in TRANSITIONS})
            out.append(row)
    schema = {"suite": pl.String, "step": pl.String, **{t: pl.Int64 for t in TRANSITIONS}}
    return pl.DataFrame(out, schema=schema)


def runtimes(benchmark_dir: str | Path) -> pl.DataFrame:
    """Snakemake's benchmark files (logs/benchmarks/<rule>/<job>.tsv): rule, job, seconds, max_rss (MB)."""
    root = Path(benchmark_dir)
    rows = []
    for tsv in sorted(root.rglob("*.tsv")):
        rel = tsv.relative_to(root)
        rule = rel.parts[0] if len(rel.parts) > 1 else tsv.stem
        job = tsv.stem if len(rel.parts) > 1 else ""
        t = pl.read_csv(tsv, separator="\t", null_values=["NA", "-"])
        for r in t.iter_rows(named=True):
            rows.append({"rule": rule, "job": job, "s": float(r["s"]), "max_rss": float(r.get("max_rss") or 0.0)})
    return pl.DataFrame(rows, schema={"rule": pl.String, "job": pl.String, "s": pl.Float64, "max_rss": pl.Float64})
