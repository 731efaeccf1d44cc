"""Importers: benchmarks as published, from local files, to the canonical problem parquet (artifacts.PROBLEM).

Formats (SRC is a file, a folder searched for *.parquet then *.jsonl then *.json, or a glob):
- `mathvista`: testmini/test parquet (`pid, question, image, decoded_image, choices, unit, precision,
  answer, question_type, answer_type, query, metadata`) or the JSON files of the GitHub release.
- `mathverse`: testmini (`sample_index, problem_index, problem_version, question, image, answer,
  question_type, metadata, query_wo, query_cot`); multiple-choice options are parsed from the question.
- `mathvision`: MATH-Vision (`id, question, options, answer, solution, level, subject, image`).
- `jsonl`: the documented generic format (generic_problem.schema.json), JSONL or parquet.
- `mathvl`: MathVL-test style records, read as the generic format with common key spellings accepted
  (`question_id`/`pid` for `id`, `image_path` for `image`, `options` for `choices`, `gt_answer` for `answer`).

Images are written once to `<OUT stem>_images/`, named by a hash of their bytes (MathVerse shows one image
in five problem versions), and their paths go in `images`. An image is read only from inside the data
folder (a path that is absolute, climbs out with `..`, or is a link leading out, or a file that is not a
regular file, is quarantined unread), only when under validate.MAX_IMAGE_BYTES, and is decoded in full
once here (a truncated file or one over validate.MAX_IMAGE_PIXELS is quarantined), so no later job
meets a bad image. Each benchmark's fields needed for scoring and
breakdowns (question_type, answer_type, unit, problem_version, subject, level, ...) are kept in `metadata`.
A row that cannot be used is quarantined with its reason in `OUT.quarantine.jsonl`, never dropped
silently; a file that is not of the format (missing columns) stops the import, naming file, row, field.

Reading files and images is benchmarks.files, the formats' converters benchmarks.formats, the check against
the training pool benchmarks.contamination; this module runs an import from end to end.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import polars as pl

from mathse.artifacts import PROBLEM, write_table, write_text_atomic
from mathse.problems.benchmarks.contamination import find_contamination
from mathse.problems.benchmarks.files import ImageStore, Quarantined, input_files, read_records
from mathse.problems.benchmarks.formats import CONVERTERS, FORMATS, check_columns

log = logging.getLogger(__name__)

ID_KEYS = ("pid", "sample_index", "id", "question_id")  # a quarantined row is reported with its published id


def report_paths(out: str | Path) -> dict[str, Path]:
    out = Path(out)
    stem = out.name.removesuffix(".parquet")
    return {
        "images": out.parent / f"{stem}_images",
        "quarantine": out.parent / f"{stem}.quarantine.jsonl",
        "contamination": out.parent / f"{stem}.contamination.jsonl",
    }


def _matches(row: dict, where: dict[str, str]) -> bool:
    meta = json.loads(row["metadata"])
    return all(str(meta.get(k, row.get(k))) == str(v) for k, v in where.items())


def import_benchmark(
    fmt: str,
    src: str | Path,
    out: str | Path,
    *,
    where: dict[str, str] | None = None,
    limit: int | None = None,
    pool: list[str] | None = None,
    contamination: str = "report",
) -> pl.DataFrame:
    """Import SRC (format `fmt`) to canonical problem parquet `out`; returns the table written.

    `where` keeps rows whose metadata has those values (e.g. {"task": "geometry problem solving"} for
    MathVista's GPS subset); `limit` keeps the first rows; `pool` (problem parquet files) is checked for
    contamination, reported (`report`) or also removed (`exclude`).
    """
    if fmt not in CONVERTERS:
        raise ValueError(f"unknown format {fmt!r}; known: {list(FORMATS)}")
    paths = report_paths(out)
    files = input_files(src)
    search_root = [Path(src)] if Path(src).is_dir() else []
    rows, quarantine, seen = [], [], {}
    store = ImageStore(paths["images"])
    for path in files:
        records = read_records(path)
        check_columns(fmt, path, [r for r in records if "__error__" not in r.data])
        store.search = [path.parent, path.parent.parent, *search_root]
        for rec in records:
            where_at = f"{rec.file}:{rec.row}"
            try:
                if "__error__" in rec.data:
                    raise Quarantined("<row>", rec.data["__error__"])
                row = CONVERTERS[fmt](rec.data, store)
                if row["problem_id"] in seen:
                    raise Quarantined("id", f"duplicated id {row['problem_id']!r} (first at {seen[row['problem_id']]})")
            except Quarantined as q:
                ident = next((rec.data[k] for k in ID_KEYS if k in rec.data), None)
                quarantine.append(
                    {"file": str(rec.file), "row": rec.row, "id": ident, "field": q.field, "reason": q.reason}
                )
                continue
            seen[row["problem_id"]] = where_at
            rows.append(row)
    table = pl.DataFrame(rows, schema=PROBLEM)
    n_read = table.height + len(quarantine)
    if where:
        n = table.height
        table = table.filter(pl.Series([_matches(r, where) for r in table.iter_rows(named=True)], dtype=pl.Boolean))
        log.info("where %s: kept %d of %d problems", where, table.height, n)
    if limit is not None and table.height > limit:
        log.info("limit: kept the first %d of %d problems", limit, table.height)
        table = table.head(limit)
    write_text_atomic("".join(json.dumps(q, default=str) + "\n" for q in quarantine), paths["quarantine"])
    if pool and contamination != "off":
        found = find_contamination(table, pool)
        write_text_atomic("".join(json.dumps(f) + "\n" for f in found), paths["contamination"])
        kinds = Counter(f["match"] for f in found)
        log.info("contamination: %d of %d problems also in the training pool %s", len(found), table.height, dict(kinds))
        if found and contamination == "exclude":
            table = table.filter(~pl.col("problem_id").is_in([f["problem_id"] for f in found]))
            log.info("contamination: excluded %d problems", len(found))
    table = write_table(table, out, "problem")
    reasons = Counter(q["reason"].split(":")[0] for q in quarantine)
    log.info(
        "%s (%s): %d rows read, %d imported to %s, %d quarantined %s (report: %s); %d images written to %s",
        src,
        fmt,
        n_read,
        table.height,
        out,
        len(quarantine),
        dict(reasons),
        paths["quarantine"],
        store.written,
        paths["images"],
    )
    if quarantine:
        log.warning("%d rows quarantined; see %s", len(quarantine), paths["quarantine"])
    return table
