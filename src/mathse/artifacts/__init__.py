"""One declared schema per parquet artifact, checked on every write; atomic writes.

`schemas` declares the tables (join keys `problem_id`, `round`, `sample_idx`, and provenance columns);
`tables` reads and writes them checked against their schema; `atomic` writes any file all or nothing.
Import every name from `mathse.artifacts`.
"""

from mathse.artifacts.atomic import _HOST, atomic_path, write_atomic, write_text_atomic
from mathse.artifacts.schemas import (
    ADDED_COLUMNS,
    API_COST,
    DISTILLED,
    EXPERIMENT_SUMMARY,
    GENERATION_STATS,
    JUDGE_STATS,
    JUDGMENT,
    ORM_EVAL,
    ORM_EXAMPLE,
    PER_ATTEMPT,
    PROBLEM,
    PROVENANCE,
    QUARANTINE,
    REFLECTION,
    ROLLOUT,
    SCHEMAS,
    SCORE,
    SUMMARY,
    TRAIN,
    TRAIN_METRICS,
)
from mathse.artifacts.tables import SchemaError, conform, empty, read_table, same_artifact, scan_table, write_table

__all__ = [
    "_HOST",  # the host part of temporary file names (tests plant a dead writer's file)
    "ADDED_COLUMNS",
    "API_COST",
    "DISTILLED",
    "EXPERIMENT_SUMMARY",
    "GENERATION_STATS",
    "JUDGE_STATS",
    "JUDGMENT",
    "ORM_EVAL",
    "ORM_EXAMPLE",
    "PER_ATTEMPT",
    "PROBLEM",
    "PROVENANCE",
    "QUARANTINE",
    "REFLECTION",
    "ROLLOUT",
    "SCHEMAS",
    "SCORE",
    "SUMMARY",
    "TRAIN",
    "TRAIN_METRICS",
    "SchemaError",
    "atomic_path",
    "conform",
    "empty",
    "read_table",
    "same_artifact",
    "scan_table",
    "write_atomic",
    "write_table",
    "write_text_atomic",
]
