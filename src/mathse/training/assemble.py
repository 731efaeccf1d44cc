"""The assemble rule: grow the cumulative training set and shrink the pool.

Round 0: the teacher's correct seed solutions; the pool is every problem not yet solved.
Round r: round r-1's set, plus up to `max_correct_per_problem` distinct correct sampled paths per problem,
plus the accepted reflections; problems with a correct path leave the pool.
With `assemble.verified: false` (unverified self-training, a control) the verdict is ignored: every sampled
problem adds its first paths and leaves the pool.
"""

from __future__ import annotations

import logging

import polars as pl

from mathse.artifacts import SCHEMAS, read_table, scan_table, write_table
from mathse.config import AssembleConfig

log = logging.getLogger(__name__)


def _with_problem_fields(rows: pl.DataFrame, problems: pl.DataFrame) -> pl.DataFrame:
    return rows.join(problems.select("problem_id", "question", "images"), on="problem_id", how="left")


def assemble_round0(distilled_path: str, seed_path: str, pool_path: str, train_out: str, remain_out: str) -> None:
    distilled = read_table(distilled_path, "distilled")
    seed = read_table(seed_path, "problem")
    pool = read_table(pool_path, "problem")
    ok = distilled.filter(pl.col("status") == "CORRECT")
    # With teacher.distill_pool the teacher solved pool problems too; they leave the pool like seed ones.
    problems = pl.concat([seed, pool]).unique("problem_id", keep="first")
    train = _with_problem_fields(ok, problems).select(
        "problem_id",
        "question",
        "images",
        "response",
        origin=pl.lit("distill"),
        round_added=pl.lit(0, pl.Int64),
        sample_idx=pl.lit(0, pl.Int64),
        model=pl.col("model"),
        backend=pl.col("backend"),
        prompt_version=pl.col("prompt_version"),
    )
    # Seed problems whose teacher solution was rejected stay unsolved, like the pool.
    remain = pl.concat([pool, seed]).join(ok.select("problem_id"), on="problem_id", how="anti")
    write_table(train, train_out, "train")
    write_table(remain, remain_out, "problem")
    log.info("round 0: %d distilled examples; %d problems remain", train.height, remain.height)


def assemble_round(
    prev_train_path: str,
    prev_remain_path: str,
    judgments_path: str | None,
    reflection_paths: list[str],
    problem_paths: list[str],
    train_out: str,
    remain_out: str,
    cfg: AssembleConfig,
    *,
    round_idx: int,
) -> None:
    prev_train = read_table(prev_train_path, "train")
    prev_remain = read_table(prev_remain_path, "problem")
    problems = pl.concat([read_table(p, "problem") for p in problem_paths]).unique("problem_id", keep="first")
    # Only the correct paths are read from the judgments (every path when unverified), and only the columns
    # a training row needs.
    # No judgments in the final reflection stage (reflection.schedule: final): it samples nothing.
    columns = ["problem_id", "sample_idx", "response", "model", "backend", "prompt_version"]
    if judgments_path is None:
        judged = pl.DataFrame(schema={c: SCHEMAS["train"][c] for c in columns})
    else:
        judgments = scan_table(judgments_path, "judgment")
        if cfg.verified:
            judgments = judgments.filter(pl.col("status") == "CORRECT")
        judged = judgments.select(columns).collect()
    correct = (
        judged.sort("problem_id", "sample_idx")
        .unique(["problem_id", "response"], keep="first", maintain_order=True)
        .group_by("problem_id", maintain_order=True)
        .head(cfg.max_correct_per_problem)
    )
    self_rows = _with_problem_fields(correct, problems).select(
        "problem_id",
        "question",
        "images",
        "response",
        origin=pl.lit("self"),
        round_added=pl.lit(round_idx, pl.Int64),
        sample_idx="sample_idx",
        model="model",
        backend="backend",
        prompt_version="prompt_version",
    )
    parts = [prev_train, self_rows]
    n_reflect = 0
    for path in reflection_paths:
        accepted = read_table(path, "reflection").filter(pl.col("accepted"))
        n_reflect += accepted.height
        parts.append(
            _with_problem_fields(accepted, problems).select(
                "problem_id",
                "question",
                "images",
                "response",
                origin=pl.lit("reflect"),
                round_added=pl.lit(round_idx, pl.Int64),
                sample_idx="sample_idx",
                model="model",
                backend="backend",
                prompt_version="prompt_version",
            )
        )
    train = pl.concat(parts, how="vertical_relaxed")
    remain = prev_remain.join(correct.select("problem_id").unique(), on="problem_id", how="anti")
    write_table(train, train_out, "train")
    write_table(remain, remain_out, "problem")
    log.info(
        "round %d: +%d self-generated%s, +%d reflected -> %d examples; pool %d -> %d problems",
        round_idx,
        self_rows.height,
        "" if cfg.verified else " (unverified: whatever the verdict)",
        n_reflect,
        train.height,
        prev_remain.height,
        remain.height,
    )
