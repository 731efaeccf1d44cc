"""The report: tables computed from a run's artifacts, the matplotlib plots and the example gallery.

The `plots` and `gallery` rules call `make_plots` and `make_gallery`; Snakemake's `--report` embeds their
files (workflow/report/*.rst are the captions). The table functions are also what the `mathse` CLI prints.
"""

from __future__ import annotations

import base64
import html
import logging
import re
from pathlib import Path

import polars as pl

from mathse.artifacts import empty, read_table, write_text_atomic
from mathse.summarize import stage_key

log = logging.getLogger(__name__)

TRANSITIONS = ["correct→correct", "wrong→correct", "correct→wrong", "wrong→wrong"]
ORIGINS = ["distill", "self", "reflect"]
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


def round_of(path: str | Path) -> int:
    m = re.search(r"round_(\d+)", str(path))
    if not m:
        raise ValueError(f"{path}: no round_<r> in the path")
    return int(m.group(1))


# ---- tables --------------------------------------------------------------------------------------


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


# ---- plots ---------------------------------------------------------------------------------------


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


def make_plots(
    *,
    summary_path: str,
    score_paths: list[str],
    train_paths: list[str],
    remain_paths: list[str],
    judgment_paths: list[str],
    pool_path: str,
    benchmark_dir: str,
    out: dict[str, str],
    cost_paths: list[str] | None = None,
) -> None:
    """The plots rule: every figure of the report, plus the stage table as reStructuredText (out["table"]).

    With out["cost"], the API use per round (`cost_paths`: the rules' api_cost files) as a page of its own:
    the report's first page keeps only the stage table, readable at any common width.
    """
    from mathse.report_pages import cost_page

    summary = read_table(summary_path, "summary")
    write_text_atomic(stage_table_rst(summary), out["table"])
    if "cost" in out:
        write_text_atomic(cost_page(cost_paths or []), out["cost"])
    plot_accuracy(summary, out["accuracy"])
    plot_training_growth(origin_counts(train_paths), out["training"])
    pool = read_table(pool_path, "problem").height
    plot_pool(pool_sizes(remain_paths, pool), out["pool"])
    judged = pl.concat([read_table(p, "judgment") for p in judgment_paths]) if judgment_paths else empty("judgment")
    plot_pass_at_k(pass_at_k(judged), out["pass_at_k"])
    plot_orm(orm_agreement(judged), out["orm"])
    scores = pl.concat([read_table(p, "score") for p in score_paths])
    plot_transitions(transition_counts(scores), out["transitions"])
    plot_runtimes(runtimes(benchmark_dir), out["runtimes"])
    log.info("wrote %d plots and the stage table to %s", len(out) - 1, Path(out["table"]).parent)


# ---- gallery -------------------------------------------------------------------------------------


def data_uri(path: str | Path) -> str:
    suffix = Path(path).suffix.lower().lstrip(".") or "png"
    mime = "jpeg" if suffix in ("jpg", "jpeg") else suffix
    return f"data:image/{mime};base64," + base64.b64encode(Path(path).read_bytes()).decode()


def gallery_examples(
    judgments: pl.DataFrame, reflections: pl.DataFrame, problems: pl.DataFrame, n: int
) -> pl.DataFrame:
    """Up to n examples of one round, one per problem: wrong paths a reflection fixed first, then wrong
    paths no reflection fixed, then correct paths; in problem order, so the choice is stable."""
    refl = reflections.select(
        "problem_id",
        "sample_idx",
        round=pl.col("source_round"),
        reflection=pl.col("response"),
        reflection_status=pl.col("status"),
        accepted=pl.col("accepted"),
    )
    rows = (
        judgments.join(refl, on=["round", "problem_id", "sample_idx"], how="left")
        .join(
            problems.select("problem_id", "question", "images", "answer", "source"),
            on="problem_id",
            how="left",
        )
        .with_columns(
            kind=pl.when(pl.col("accepted").fill_null(False))
            .then(0)
            .when(pl.col("status") == "WRONG")
            .then(1)
            .otherwise(2)
        )
        .sort("kind", "problem_id", "sample_idx")
        .unique("problem_id", keep="first", maintain_order=True)
    )
    # Show each kind where there is one, then fill up in order.
    firsts = rows.unique("kind", keep="first", maintain_order=True)
    rest = rows.join(firsts.select("problem_id"), on="problem_id", how="anti")
    return pl.concat([firsts, rest]).head(n).sort("kind", "problem_id")


_CSS = """
body{font-family:system-ui,sans-serif;margin:16px;color:#222}
h1{font-size:20px} .grid{display:flex;flex-wrap:wrap;gap:14px}
.card{border:1px solid #ccc;border-radius:8px;padding:10px;width:430px;background:#fafafa}
.card img{width:168px;height:168px;image-rendering:pixelated;border:1px solid #ddd;float:right;margin-left:8px}
pre{white-space:pre-wrap;background:#fff;border:1px solid #e3e3e3;padding:6px;font-size:12px;margin:4px 0}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-size:12px;font-weight:600}
.CORRECT{background:#2e7d32} .WRONG{background:#c62828} .none{background:#757575}
.label{font-size:12px;color:#555;margin-top:6px;clear:both} .q{font-weight:600}
"""


def gallery_html(examples: pl.DataFrame, round_idx: int) -> str:
    cards = []
    for r in examples.iter_rows(named=True):
        esc = html.escape
        imgs = "".join(f'<img alt="{esc(p)}" src="{data_uri(p)}">' for p in (r["images"] or []) if Path(p).exists())
        verdict = f'<span class="badge {r["status"]}">ORM: {r["status"]}</span>'
        check = "right" if r["answer_correct"] else "wrong"
        parts = [
            f'<div class="card" data-problem="{esc(r["problem_id"])}">{imgs}',
            f"<div><b>{esc(r['problem_id'])}</b> · {esc(r['source'] or '')} · sample {r['sample_idx']}</div>",
            f'<div class="q">{esc(r["question"] or "")}</div>',
            f"<div>reference answer: <b>{esc(r['answer'] or '')}</b></div>",
            '<div class="label">sampled path</div>',
            f"<pre>{esc(r['response'])}</pre>",
            f"<div>{verdict} math-verify: answer {check}"
            + (f" · error step <b>{r['error_step']}</b>" if r["error_step"] is not None else "")
            + "</div>",
        ]
        if r["status"] == "WRONG":
            parts += [
                f'<div class="label">ORM analysis</div><pre>{esc(r["error_analysis"] or "")}</pre>',
                f'<div class="label">ORM suggestion</div><pre>{esc(r["improvement_suggestion"] or "")}</pre>',
            ]
            if r["reflection"] is not None:
                status = r["reflection_status"]
                parts += [
                    f'<div class="label">teacher reflection <span class="badge {status}">re-check: {status}</span>'
                    + (" (joins the training set)" if r["accepted"] else " (rejected)")
                    + "</div>",
                    f'<pre class="reflection">{esc(r["reflection"])}</pre>',
                ]
            else:
                parts.append('<div class="label"><span class="badge none">no reflection of this path</span></div>')
        parts.append("</div>")
        cards.append("\n".join(parts))
    body = "\n".join(cards) if cards else "<p>No rollouts in this round (the pool was empty).</p>"
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>MathSE round {round_idx} examples</title>'
        f"<style>{_CSS}</style></head><body>\n<h1>Round {round_idx}: sampled paths, ORM verdicts, reflections</h1>\n"
        f'<div class="grid" id="gallery">\n{body}\n</div></body></html>\n'
    )


def make_gallery(
    judgments_path: str,
    reflection_paths: list[str],
    problem_paths: list[str],
    out_path: str,
    *,
    round_idx: int,
    n_examples: int,
) -> pl.DataFrame:
    """The gallery rule: a self-contained HTML page (images inlined) of one round's examples."""
    judgments = read_table(judgments_path, "judgment")
    reflections = pl.concat([read_table(p, "reflection") for p in reflection_paths] or [empty("reflection")]).filter(
        pl.col("source_round") == round_idx
    )
    problems = pl.concat([read_table(p, "problem") for p in problem_paths]).unique("problem_id", keep="first")
    examples = gallery_examples(judgments, reflections, problems, n_examples)
    write_text_atomic(gallery_html(examples, round_idx), out_path)
    log.info("round %d gallery: %d examples -> %s", round_idx, examples.height, out_path)
    return examples
