"""Contamination: benchmark problems whose image (by decoded pixels) or normalised question also appears in the
training pool."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import polars as pl
from PIL import Image

from mathse.artifacts import read_table


def question_key(text: str) -> str:
    """A question normalised for comparison: lower case, letters and digits only, single spaces."""
    return " ".join(re.sub(r"[^0-9a-z]+", " ", (text or "").lower()).split())


def pixel_hash(path: str) -> str:
    """Hash of the decoded pixels, so a re-encoded copy of the same image still matches."""
    with Image.open(path) as img:
        rgb = img.convert("RGB")
        return hashlib.sha256(f"{rgb.size}".encode() + rgb.tobytes()).hexdigest()


def _plain_question(row: dict) -> str:
    meta = json.loads(row["metadata"]) if row.get("metadata") else {}
    return str(meta.get("question") or row["question"])


def find_contamination(bench: pl.DataFrame, pool_paths: list[str]) -> list[dict]:
    """Benchmark problems whose image (by pixels) or normalised question also appears in the training pool."""
    questions, images = set(), set()
    for path in pool_paths:
        for row in read_table(path, "problem").iter_rows(named=True):
            questions.add(question_key(_plain_question(row)))
            images.update(pixel_hash(p) for p in row["images"] if Path(p).is_file())
    found = []
    for row in bench.iter_rows(named=True):
        reasons = []
        if question_key(_plain_question(row)) in questions:
            reasons.append("question")
        if any(pixel_hash(p) in images for p in row["images"]):
            reasons.append("image")
        if reasons:
            found.append({"problem_id": row["problem_id"], "match": "+".join(reasons)})
    return found
