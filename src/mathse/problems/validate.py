"""Problem-table checks: every bad row is quarantined with its file, row, field and reason; the rest go on.

A problem set from outside (an importer, a user's file) can have missing or corrupt images, empty
questions, unknown answer types, duplicated ids, absurdly long text or text that was not valid UTF-8.
None of these should crash a finished round or be dropped silently.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

import polars as pl
from PIL import Image

from mathse.artifacts import empty

log = logging.getLogger(__name__)

ANSWER_TYPES = {"integer", "float", "text", "choice", "list"}  # as the artifact schema says
MAX_QUESTION_CHARS = 20_000
MAX_ANSWER_CHARS = 1_000
MAX_IMAGE_PIXELS = 8192 * 8192
MAX_IMAGE_BYTES = 64 * 2**20  # an image file larger than this is quarantined before it is read


@lru_cache(maxsize=100_000)
def image_problem(path: str) -> str | None:
    """Why an image cannot be used, or None when it decodes."""
    if not Path(path).exists():
        return f"image not found: {path}"
    if not Path(path).is_file():
        return f"image path is not a regular file (a folder, FIFO, device or socket): {path}"
    size = Path(path).stat().st_size
    if size > MAX_IMAGE_BYTES:
        return f"image file is {size} bytes, over the limit of {MAX_IMAGE_BYTES}: {path}"
    try:
        with Image.open(path) as img:
            if img.width * img.height > MAX_IMAGE_PIXELS:
                return f"image is {img.width}x{img.height} pixels, over the limit: {path}"
            img.load()
    except Exception as err:  # noqa: BLE001 - any decoder failure means the image is unusable
        return f"image cannot be decoded ({type(err).__name__}: {err}): {path}"
    return None


def row_problems(row: dict) -> list[tuple[str, str]]:
    """(field, reason) for everything wrong with one canonical problem row."""
    found = []
    if not (row["problem_id"] or "").strip():
        found.append(("problem_id", "empty problem_id"))
    for field, limit in (("question", MAX_QUESTION_CHARS), ("answer", MAX_ANSWER_CHARS)):
        text = row[field] or ""
        if not text.strip():
            found.append((field, f"empty {field}"))
        elif len(text) > limit:
            found.append((field, f"{field} is {len(text)} characters, over the limit of {limit}"))
        if "\ufffd" in text:
            found.append((field, f"{field} contains bytes that were not valid UTF-8 (U+FFFD)"))
    if row["answer_type"] not in ANSWER_TYPES:
        found.append(
            ("answer_type", f"unknown answer_type {row['answer_type']!r}; expected one of {sorted(ANSWER_TYPES)}")
        )
    if row["answer_type"] == "choice" and not row["choices"]:
        found.append(("choices", "answer_type is 'choice' but there are no choices"))
    for path in row["images"] or []:
        reason = image_problem(path)
        if reason:
            found.append(("images", reason))
    return found


def check_problems(df: pl.DataFrame, file: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split a problem table into usable rows and quarantined rows (file, row, problem_id, field, reason)."""
    bad_rows: dict[int, list[tuple[str, str]]] = {}
    first_seen: dict[str, int] = {}
    for i, row in enumerate(df.iter_rows(named=True)):
        found = row_problems(row)
        pid = row["problem_id"]
        if pid in first_seen:
            found.append(("problem_id", f"duplicate problem_id {pid!r} (first at row {first_seen[pid]})"))
        else:
            first_seen[pid] = i
        if found:
            bad_rows[i] = found
    quarantine = pl.DataFrame(
        [
            {"file": file, "row": i, "problem_id": df["problem_id"][i], "field": field, "reason": reason}
            for i, found in bad_rows.items()
            for field, reason in found
        ],
        schema=empty("quarantine").schema,
    )
    good = df.with_row_index("_row").filter(~pl.col("_row").is_in(list(bad_rows))).drop("_row")
    if bad_rows:
        log.warning("%s: %d of %d problems quarantined", file, len(bad_rows), df.height)
        for r in quarantine.head(20).iter_rows(named=True):
            log.warning("  row %d (%s) %s: %s", r["row"], r["problem_id"], r["field"], r["reason"])
    return good, quarantine
