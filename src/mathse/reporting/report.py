"""The report: the rules that draw its figures and build its example gallery.

The `plots` and `gallery` rules call `make_plots` and `make_gallery`; Snakemake's `--report` embeds their
files (workflow/report/*.rst are the captions). The tables come from `mathse.reporting.report_tables` (also what the
`mathse` CLI prints), the figures from `mathse.reporting.figures`.
"""

from __future__ import annotations

import base64
import html
import logging
from pathlib import Path

import polars as pl

from mathse.artifacts import empty, read_table, write_text_atomic
from mathse.reporting.figures import (
    plot_accuracy,
    plot_orm,
    plot_pass_at_k,
    plot_pool,
    plot_runtimes,
    plot_training_growth,
    plot_transitions,
)
from mathse.reporting.report_tables import TRANSITIONS as TRANSITIONS  # `as`: re-exported, still imported from here
from mathse.reporting.report_tables import flips as flips
from mathse.reporting.report_tables import (
    origin_counts,
    orm_agreement,
    pass_at_k,
    pool_sizes,
    runtimes,
    stage_table_rst,
    transition_counts,
)

log = logging.getLogger(__name__)


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
    from mathse.reporting.report_pages import cost_page

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
