"""Training problems from local files (data.source: files): the seed part and the pool.

Each source is imported by the same importers as the benchmarks (any format, images extracted once beside
results/data/sources/{name}.parquet, bad rows quarantined with their reasons), its problem ids prefixed with
the source name so that two datasets' ids never collide. Without seed sources, `n_seed` problems drawn with
the run's seed form the seed part the teacher solves in round 0, and the rest is the pool.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import polars as pl

from mathse.artifacts import empty
from mathse.config import DataConfig, ProblemSource
from mathse.problems.benchmarks import import_benchmark, report_paths

log = logging.getLogger(__name__)

SEED_STREAM = 7919  # the seed/pool split's own random stream


def import_source(name: str, src: ProblemSource, out_dir: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One source as problem rows (ids `name/id`) and its quarantined rows in the quarantine schema."""
    out = out_dir / f"{name}.parquet"
    table = import_benchmark(src.format, src.path, out, where=src.where, limit=src.limit, contamination="off")
    table = table.with_columns(problem_id=pl.lit(f"{name}/") + pl.col("problem_id"))
    bad = [json.loads(line) for line in report_paths(out)["quarantine"].read_text().splitlines() if line]
    quarantine = pl.DataFrame(
        [
            {
                "file": q["file"],
                "row": q["row"],
                "problem_id": None if q["id"] is None else f"{name}/{q['id']}",
                "field": q["field"],
                "reason": q["reason"],
            }
            for q in bad
        ],
        schema=empty("quarantine").schema,
    )
    return table, quarantine


def load_sources(cfg: DataConfig, seed: int, out_dir: Path) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(seed part, pool, quarantined rows) from data.seed_sources and data.pool_sources."""
    imported = {
        role: [import_source(name, src, out_dir) for name, src in sources.items()]
        for role, sources in (("seed", cfg.seed_sources), ("pool", cfg.pool_sources))
    }
    quarantine = pl.concat([q for parts in imported.values() for _, q in parts] or [empty("quarantine")])
    pool = pl.concat([t for t, _ in imported["pool"]]) if imported["pool"] else None
    if imported["seed"]:
        seed_part = pl.concat([t for t, _ in imported["seed"]])
    else:
        n = min(cfg.n_seed, pool.height)
        chosen = np.zeros(pool.height, dtype=bool)
        chosen[np.random.default_rng([seed, SEED_STREAM]).permutation(pool.height)[:n]] = True
        seed_part, pool = pool.filter(pl.Series(chosen)), pool.filter(pl.Series(~chosen))
        log.info("seed part: %d problems drawn from the pool sources (data.n_seed %d)", n, cfg.n_seed)
    if pool is None:
        pool = seed_part.clear()
    return seed_part, pool, quarantine
