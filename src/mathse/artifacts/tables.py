"""Reading and writing artifacts: every table checked against its schema, on write and on read."""

from __future__ import annotations

import filecmp
from pathlib import Path

import polars as pl

from mathse.artifacts.atomic import write_atomic
from mathse.artifacts.schemas import ADDED_COLUMNS, PER_ATTEMPT, SCHEMAS
from mathse.faults import failpoint


class SchemaError(ValueError):
    """A table does not match its artifact's declared schema."""


def empty(name: str) -> pl.DataFrame:
    return pl.DataFrame(schema=SCHEMAS[name])


def conform(df: pl.DataFrame, name: str, where: str = "<table>") -> pl.DataFrame:
    """Check that `df` has exactly the schema's columns with castable types; return it in schema order."""
    schema = SCHEMAS[name]
    added = [c for c in ADDED_COLUMNS.get(name, ()) if c not in df.columns]
    if added:
        df = df.with_columns(pl.lit(None, schema[c]).alias(c) for c in added)
    missing = [c for c in schema if c not in df.columns]
    extra = [c for c in df.columns if c not in schema]
    if missing or extra:
        raise SchemaError(f"{where}: {name} table has missing columns {missing} and unexpected columns {extra}")
    out = {}
    for col, dtype in schema.items():
        series = df.get_column(col)
        if series.dtype != dtype:
            try:
                series = series.cast(dtype, strict=True)
            except Exception as err:  # noqa: BLE001 - re-raised with the column named
                raise SchemaError(f"{where}: column {col!r} is {series.dtype}, expected {dtype}: {err}") from None
        out[col] = series
    return pl.DataFrame(out)


def write_table(df: pl.DataFrame, path: str | Path, name: str) -> pl.DataFrame:
    """Write `df` as artifact `name` to `path`: schema-checked, to a temp file renamed when complete."""
    df = conform(df, name, where=str(path))

    def write(tmp: Path) -> None:
        try:
            df.write_parquet(tmp, compression="zstd", statistics=False)
        except (OSError, pl.exceptions.ComputeError) as err:  # a full disk surfaces as either
            raise OSError(f"{path}: could not write the {name} artifact ({err}); nothing was written") from err
        failpoint(f"write_{name}")  # a crash here must leave no file that looks complete

    write_atomic(path, write)
    return df


def read_table(path: str | Path, name: str) -> pl.DataFrame:
    """Read artifact `name`, checking its schema (a clear error names the file and the column)."""
    if not Path(path).exists():
        raise FileNotFoundError(f"{path}: {name} artifact not found")
    return conform(pl.read_parquet(path), name, where=str(path))


def scan_table(path: str | Path, name: str) -> pl.LazyFrame:
    """A lazy scan of artifact `name`: the schema is checked from the file's metadata (no data read), so a
    query reads only the columns and rows it needs."""
    if not Path(path).exists():
        raise FileNotFoundError(f"{path}: {name} artifact not found")
    schema = SCHEMAS[name]
    found = pl.read_parquet_schema(path)
    added = {c for c in ADDED_COLUMNS.get(name, ()) if c not in found}
    missing = [c for c in schema if c not in found and c not in added]
    extra = [c for c in found if c not in schema]
    if missing or extra:
        raise SchemaError(f"{path}: {name} table has missing columns {missing} and unexpected columns {extra}")
    cols = [
        pl.lit(None, t).alias(c) if c in added else pl.col(c) if found[c] == t else pl.col(c).cast(t, strict=True)
        for c, t in schema.items()
    ]
    return pl.scan_parquet(path).select(cols)


def same_artifact(a: str | Path, b: str | Path) -> bool:
    """Byte-identical, or (training metrics, generation stats) equal in every column but those of one attempt
    (PER_ATTEMPT: wall clock, work a resumed job did not redo): what two runs of one config and seed share."""
    a, b = Path(a), Path(b)
    if filecmp.cmp(a, b, shallow=False):
        return True
    generation = a.name == "rollout_stats.parquet" or a.parent.name == "evaluate_stats"
    kind = "train_metrics" if a.name == "train_metrics.parquet" else "generation_stats" if generation else None
    if kind is None:
        return False
    return read_table(a, kind).drop(PER_ATTEMPT[kind]).equals(read_table(b, kind).drop(PER_ATTEMPT[kind]))
