"""Resumable work in shards: a long rule writes each finished shard, and a rerun skips the finished ones.

Shards live beside the rule's output (`OUT.shards/<key>/shard_00000.parquet`), each written atomically.
The key fingerprints everything that determines the result (inputs' content, config section, seed), so a
changed input or setting never reuses stale shards. Each shard's randomness is seeded from its index, so
an interrupted-and-resumed run gives the same rows as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import polars as pl

from mathse.artifacts import write_atomic
from mathse.faults import failpoint

log = logging.getLogger(__name__)
_SMALL = 1 << 20  # files up to 1 MiB in a model folder are hashed by content (configs, markers)


def path_digest(path: str | Path | None) -> str:
    """Content digest of a file; for a folder (model weights), of its small files and every file's size."""
    if path is None:
        return "none"
    p = Path(path)
    h = hashlib.sha256()
    if p.is_file():
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()
    for f in sorted(x for x in p.rglob("*") if x.is_file()):
        size = f.stat().st_size
        h.update(f"{f.relative_to(p)}:{size}".encode())
        if size <= _SMALL:
            h.update(f.read_bytes())
    return h.hexdigest()


def fingerprint(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_sharded(
    items: Sequence,
    shard_size: int,
    out_path: str,
    key: str,
    work: Callable[[int, Sequence], pl.DataFrame],
    name: str,
    part: tuple[int, int] = (0, 1),
) -> pl.DataFrame:
    """Apply `work(shard_index, shard_items)` to consecutive shards, keeping finished shards on disk.

    `part` (p, n): only the shards whose index is p modulo n (one of n jobs splitting the work).
    """
    root = Path(f"{out_path}.shards")
    folder = root / key
    if root.exists():  # shards of another fingerprint are stale
        for other in root.iterdir():
            if other != folder:
                shutil.rmtree(other, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    n_shards = math.ceil(len(items) / shard_size) if items else 0
    mine = [s for s in range(n_shards) if s % part[1] == part[0]]
    frames, resumed = [], 0
    for s in mine:
        path = folder / f"shard_{s:05d}.parquet"
        if path.exists():
            frames.append(pl.read_parquet(path))
            resumed += 1
            continue
        df = work(s, items[s * shard_size : (s + 1) * shard_size])
        write_atomic(path, df.write_parquet)
        frames.append(df)
        log.info("%s: shard %d/%d done (%d of this job's %d)", name, s + 1, n_shards, len(frames), len(mine))
        failpoint(f"{name}_shard")
    if resumed:
        log.info("%s: resumed, %d of %d shards were already done and were not redone", name, resumed, len(mine))
    return pl.concat(frames) if frames else pl.DataFrame()


def remove_shards(out_path: str) -> None:
    """After the rule's artifact is written, its shards are no longer needed."""
    shutil.rmtree(f"{out_path}.shards", ignore_errors=True)
