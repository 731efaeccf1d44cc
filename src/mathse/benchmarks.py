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
"""

from __future__ import annotations

import glob
import hashlib
import io
import json
import logging
import os
import re
import stat
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
from PIL import Image

from mathse.artifacts import PROBLEM, read_table, write_table, write_text_atomic
from mathse.validate import MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS

log = logging.getLogger(__name__)

FORMATS = ("mathvista", "mathverse", "mathvision", "mathvl", "jsonl")
REQUIRED = {
    "mathvista": ["pid", "question", "choices", "answer", "question_type", "answer_type"],
    "mathverse": ["sample_index", "problem_version", "question", "image", "answer", "question_type"],
    "mathvision": ["id", "question", "options", "answer", "image"],
    "mathvl": ["id", "question", "answer"],
    "jsonl": ["id", "question", "answer"],
}
MATHVL_ALIASES = {
    "id": ["question_id", "pid", "index"],
    "image": ["image_path", "img"],
    "choices": ["options"],
    "answer": ["gt_answer", "ground_truth"],
}
GENERIC_SCHEMA = Path(__file__).with_name("generic_problem.schema.json")
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
ID_KEYS = ("pid", "sample_index", "id", "question_id")  # a quarantined row is reported with its published id


class BenchmarkFormatError(ValueError):
    """The whole input is unusable (not the declared format); the message names file, row and field."""


class Quarantined(Exception):  # noqa: N818 - a row's outcome, not an error of the program
    def __init__(self, field: str, reason: str):
        super().__init__(reason)
        self.field, self.reason = field, reason


@dataclass
class Record:
    file: Path
    row: int  # 0-based row (parquet) or line (JSONL) in `file`
    data: dict[str, Any]


# ---------------------------------------------------------------------------------------------------
# Reading files


def input_files(src: str | Path) -> list[Path]:
    """The data files of SRC: itself, a glob's matches, or a folder's parquet (else JSONL, else JSON) files."""
    src_s = str(src)
    if any(c in src_s for c in "*?["):
        files = sorted(Path(p) for p in glob.glob(src_s, recursive=True))
    elif Path(src_s).is_dir():
        files = []
        for ext in ("parquet", "jsonl", "json"):
            files = sorted(p for p in Path(src_s).rglob(f"*.{ext}") if ".quarantine" not in p.name)
            if files:
                break
    else:
        files = [Path(src_s)] if Path(src_s).exists() else []
    special = [p for p in files if not p.is_file() and not p.is_dir()]
    if special:
        raise BenchmarkFormatError(f"{special[0]}: not a regular file (a FIFO, device or socket); nothing was read")
    files = [p for p in files if p.is_file()]
    if not files:
        raise FileNotFoundError(f"{src}: no benchmark file found (expected a .parquet, .jsonl or .json file)")
    return files


def read_records(path: Path) -> list[Record]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return [Record(path, i, r) for i, r in enumerate(pq.read_table(path).to_pylist())]
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        records = []
        for i, line in enumerate(text.splitlines()):
            if line.strip():
                try:
                    records.append(Record(path, i, json.loads(line)))
                except json.JSONDecodeError as err:
                    records.append(Record(path, i, {"__error__": f"malformed JSON: {err}"}))
        return records
    data = json.loads(text)
    if isinstance(data, dict):  # MathVista's testmini.json maps pid -> problem
        data = data.get("data", list(data.values()))
    if not isinstance(data, list):
        raise BenchmarkFormatError(f"{path}: expected a JSON list of problems (or an object of them)")
    return [Record(path, i, r if isinstance(r, dict) else {"__error__": "not an object"}) for i, r in enumerate(data)]


def check_columns(fmt: str, path: Path, records: list[Record]) -> None:
    """Stop when no row of a file has a column the format needs: the file is not of that format."""
    columns = set().union(*(r.data.keys() for r in records)) if records else set()
    if fmt == "mathvl":
        for canonical, aliases in MATHVL_ALIASES.items():
            if columns & set(aliases):
                columns.add(canonical)
    missing = [c for c in REQUIRED[fmt] if c not in columns]
    if fmt == "mathvista" and not columns & {"image", "decoded_image"}:
        missing.append("image")
    if missing and records:
        raise BenchmarkFormatError(
            f"{path}: row 0: field {missing[0]!r} missing: not a {fmt} file "
            f"(needs {REQUIRED[fmt]}; missing {missing}; has {sorted(columns)})"
        )


# ---------------------------------------------------------------------------------------------------
# Images


@dataclass
class ImageStore:
    """Writes each distinct image once, named by its content hash, under `folder`."""

    folder: Path
    search: list[Path] = field(default_factory=list)  # the data folder(s): relative image paths are read only here
    written: int = 0

    def _resolve(self, rel: str) -> Path:
        """The file an image path names, inside one of the search folders; Quarantined (unread) otherwise."""
        p = Path(rel)
        if p.is_absolute() or rel.startswith("~"):
            raise Quarantined("image", f"absolute image path (paths are relative to the data folder): {rel}")
        if os.path.normpath(rel).split(os.sep)[0] == "..":
            raise Quarantined("image", f"image path climbs out of the data folder with '..': {rel}")
        roots = [os.path.realpath(b) for b in self.search]
        for base in self.search:
            for c in (base / p, base / "images" / p.name):
                if not os.path.lexists(c):
                    continue
                real = os.path.realpath(c)
                if not any(os.path.commonpath([real, root]) == root for root in roots):
                    raise Quarantined("image", f"image path is a link leading out of the data folder: {rel}")
                try:
                    st = os.stat(real)
                except OSError as err:
                    raise Quarantined("image", f"image file cannot be read ({type(err).__name__}): {rel}") from None
                if stat.S_ISDIR(st.st_mode):
                    continue
                if not stat.S_ISREG(st.st_mode):
                    raise Quarantined("image", f"image path is not a regular file (a FIFO, device or socket): {rel}")
                if st.st_size > MAX_IMAGE_BYTES:
                    reason = f"image file is {st.st_size} bytes, over the limit of {MAX_IMAGE_BYTES}: {rel}"
                    raise Quarantined("image", reason)
                return Path(real)
        raise Quarantined("image", f"image file not found: {rel}")

    def bytes_of(self, value: Any) -> bytes:
        if isinstance(value, dict):
            if value.get("bytes"):
                value = value["bytes"]
            else:
                value = value.get("path")
        if isinstance(value, bytes | bytearray) and value:
            if len(value) > MAX_IMAGE_BYTES:
                raise Quarantined("image", f"image is {len(value)} bytes, over the limit of {MAX_IMAGE_BYTES}")
            return bytes(value)
        if isinstance(value, str) and value.strip():
            return self._resolve(value.strip()).read_bytes()
        raise Quarantined("image", "missing image")

    def save(self, value: Any) -> str:
        data = self.bytes_of(value)
        try:
            with Image.open(io.BytesIO(data)) as img:
                if img.width * img.height > MAX_IMAGE_PIXELS:
                    raise Quarantined(
                        "image", f"image is {img.width}x{img.height} pixels, over the limit of {MAX_IMAGE_PIXELS}"
                    )
                ext = (img.format or "png").lower().replace("jpeg", "jpg")
                img.load()  # decoded in full once, here: a truncated file fails now, not in a later job
        except Quarantined:
            raise
        except Exception as err:  # noqa: BLE001 - any decoding failure quarantines the row
            raise Quarantined("image", f"unreadable image: {type(err).__name__}: {err}") from None
        path = self.folder / f"{hashlib.sha256(data).hexdigest()[:20]}.{ext}"
        if not path.exists():
            self.folder.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            self.written += 1
        return str(path)


# ---------------------------------------------------------------------------------------------------
# Field checks shared by the formats


def _text(value: Any, name: str, what: str = "empty") -> str:
    if value is None or (isinstance(value, float) and value != value) or str(value).strip() == "":
        raise Quarantined(name, f"{what} {name}")
    return str(value).strip()


def _as_dict(value: Any) -> dict:
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return {"raw": value}
    return dict(value) if isinstance(value, dict) else {"raw": value}


def infer_answer_type(answer: str) -> str:
    if re.fullmatch(r"[-+]?\d+", answer):
        return "integer"
    if re.fullmatch(r"[-+]?(\d+\.\d*|\.\d+)", answer):
        return "float"
    if answer[:1] == "[" and answer[-1:] == "]" and "," in answer[1:-1] and "\n" not in answer:  # \[.*,.*\]
        return "list"
    return "text"


def _decimals(answer: str) -> int | None:
    m = re.fullmatch(r"[-+]?\d*\.(\d+)", answer)
    return len(m.group(1)) if m else None


def _choices(value: Any, name: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):  # some exports store the list as a JSON string
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise Quarantined(name, f"malformed choices: not a list: {value[:60]!r}") from None
    if not isinstance(value, list) or not all(isinstance(c, str | int | float) for c in value):
        raise Quarantined(name, f"malformed choices: expected a list of strings, got {type(value).__name__}")
    choices = [str(c).strip() for c in value]
    if any(c == "" for c in choices):
        raise Quarantined(name, "malformed choices: an empty option")
    if len(set(choices)) != len(choices):
        raise Quarantined(name, "malformed choices: repeated options")
    return choices


def _letter_of(answer: str, choices: list[str], name: str) -> str:
    """The option letter of a choice answer given as a letter ('B', '(B)') or as the option's text."""
    a = answer.strip().strip("()").strip()
    if len(a) == 1 and a.upper() in LETTERS[: len(choices)]:
        return a.upper()
    if answer in choices:
        return LETTERS[choices.index(answer)]
    raise Quarantined(name, f"malformed choices: answer {answer!r} is neither an option letter nor an option")


def with_choices(question: str, choices: list[str]) -> str:
    if not choices or re.search(r"\bchoices\s*:", question, re.IGNORECASE):
        return question
    return question + "\nChoices:\n" + "\n".join(f"({LETTERS[i]}) {c}" for i, c in enumerate(choices))


def _row(pid: str, question: str, images: list[str], choices, answer, answer_type, precision, source, meta) -> dict:
    return {
        "problem_id": pid,
        "question": question,
        "images": images,
        "choices": choices,
        "answer": answer,
        "answer_type": answer_type,
        "precision": precision,
        "source": source,
        "split": "test",
        "solution_steps": meta.pop("solution_steps", None) or [],
        "metadata": json.dumps(meta, sort_keys=True, default=str, ensure_ascii=False),
    }


# ---------------------------------------------------------------------------------------------------
# One converter per format: a published record -> a canonical row (or Quarantined)


def convert_mathvista(rec: dict, store: ImageStore) -> dict:
    pid = _text(rec.get("pid"), "pid")
    question_type = rec.get("question_type")
    if question_type not in ("multi_choice", "free_form"):
        raise Quarantined("question_type", f"unknown question type {question_type!r}")
    answer_type = rec.get("answer_type")
    if answer_type not in ("text", "integer", "float", "list"):
        raise Quarantined("answer_type", f"unknown answer type {answer_type!r}")
    answer = _text(rec.get("answer"), "answer")
    choices = _choices(rec.get("choices"), "choices")
    meta = {"source_id": pid, "question": rec.get("question"), "question_type": question_type}
    meta |= {"answer_type": answer_type, "unit": rec.get("unit"), **_as_dict(rec.get("metadata"))}
    if question_type == "multi_choice":
        if len(choices) < 2:
            raise Quarantined("choices", "malformed choices: multiple choice with fewer than two options")
        if answer not in choices:
            raise Quarantined("choices", f"malformed choices: answer {answer!r} is not one of the options")
        meta["answer_letter"] = LETTERS[choices.index(answer)]
    precision = rec.get("precision")
    precision = int(precision) if precision is not None and precision == precision else None
    if answer_type == "float" and precision is None:
        precision = _decimals(answer)
    image = rec.get("decoded_image") or rec.get("image")
    images = [store.save(image)]
    question = rec.get("query") or _text(rec.get("question"), "question")
    atype = "choice" if question_type == "multi_choice" else answer_type
    return _row(f"mathvista-{pid}", question, images, choices, answer, atype, precision, "mathvista", meta)


# An option line; group 2 is the option with trailing whitespace (stripped by the caller): a lazy `(.+?)\s*$`
# would backtrack over a long run of spaces.
_OPTION_LINE = re.compile(r"^\s*\(?([A-H])\)?\s*[:.)：]\s*(.+)$")


_BLANK = re.compile(r"\s*(:?)\s*")


def _after_choices(question: str) -> str | None:
    """re.search(r"choices\\s*:?\\s*\\n(.*)$", question, re.I | re.S).group(1), in linear time: for the first
    'choices' followed by a blank (one colon allowed) holding a newline, the text after the blank's last newline
    (after the colon if one follows it, else before the colon)."""
    for m in re.finditer(r"choices", question, re.IGNORECASE):
        blank = _BLANK.match(question, m.end())
        zone = blank.group(0)
        colon = zone.find(":") if blank.group(1) else -1
        last = zone.rfind("\n")
        if colon >= 0 and last < colon:
            last = zone.rfind("\n", 0, colon)
        if last >= 0:
            return question[m.end() + last + 1 :]
    return None


def parse_inline_choices(question: str) -> list[str]:
    """Options written in a MathVerse question after 'Choices:', one 'A:...' / '(A) ...' line each."""
    rest = _after_choices(question or "")
    if rest is None:
        return []
    choices = []
    for line in rest.splitlines():
        opt = _OPTION_LINE.match(line)
        if opt and opt.group(1) == LETTERS[len(choices)]:
            choices.append(opt.group(2).rstrip())
        elif line.strip() and choices:
            break
    return choices


def convert_mathverse(rec: dict, store: ImageStore) -> dict:
    sid = _text(rec.get("sample_index"), "sample_index")
    version = _text(rec.get("problem_version"), "problem_version")
    question_type = rec.get("question_type")
    if question_type not in ("multi-choice", "free-form"):
        raise Quarantined("question_type", f"unknown question type {question_type!r}")
    answer = _text(rec.get("answer"), "answer")
    raw_question = str(rec.get("question") or "")
    meta = {
        "source_id": sid,
        "problem_index": rec.get("problem_index"),
        "problem_version": version,
        "question_type": question_type,
        "question": raw_question,
        "query_wo": rec.get("query_wo"),
        "query_cot": rec.get("query_cot"),
        **_as_dict(rec.get("metadata")),
    }
    choices, precision = [], None
    if question_type == "multi-choice":
        choices = parse_inline_choices(raw_question)
        letter = answer.strip().strip("()").strip().upper()
        if len(letter) != 1 or letter not in LETTERS[: len(choices) or 8]:
            raise Quarantined("answer", f"malformed choices: multiple-choice answer {answer!r} is not an option letter")
        meta["answer_letter"] = letter
        answer_type = "choice"
    else:
        answer_type = infer_answer_type(answer)
        precision = _decimals(answer) if answer_type == "float" else None
    question = rec.get("query_cot") or raw_question or rec.get("query_wo") or ""
    question = _text(question, "question")
    images = [store.save(rec.get("image"))]
    return _row(f"mathverse-{sid}", question, images, choices, answer, answer_type, precision, "mathverse", meta)


def convert_mathvision(rec: dict, store: ImageStore) -> dict:
    pid = _text(rec.get("id"), "id")
    raw_question = _text(rec.get("question"), "question")
    answer = _text(rec.get("answer"), "answer")
    options = _choices(rec.get("options"), "options")
    meta = {"source_id": pid, "question": raw_question, "level": rec.get("level"), "subject": rec.get("subject")}
    meta["solution"] = rec.get("solution")
    precision = None
    if options:
        meta["answer_letter"] = _letter_of(answer, options, "options")
        answer_type = "choice"
    else:
        answer_type = infer_answer_type(answer)
    images = [store.save(rec.get("decoded_image") or rec.get("image"))]
    question = with_choices(raw_question, options)
    return _row(f"mathvision-{pid}", question, images, options, answer, answer_type, precision, "mathvision", meta)


_generic_validator = None


def _validator():
    global _generic_validator
    if _generic_validator is None:
        from jsonschema import Draft202012Validator

        _generic_validator = Draft202012Validator(json.loads(GENERIC_SCHEMA.read_text()))
    return _generic_validator


def _jsonable(value: Any) -> Any:
    """Image structs from parquet carry bytes, which JSON schema validation cannot see: stand them in."""
    if isinstance(value, dict):
        return {k: ("<bytes>" if isinstance(v, bytes) else _jsonable(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def convert_generic(rec: dict, store: ImageStore, fmt: str = "jsonl") -> dict:
    rec = {k: v for k, v in rec.items() if v is not None}
    if fmt == "mathvl":
        for canonical, aliases in MATHVL_ALIASES.items():
            for alias in aliases:
                if canonical not in rec and alias in rec:
                    rec[canonical] = rec.pop(alias)
    errors = sorted(_validator().iter_errors(_jsonable(rec)), key=lambda e: list(e.path))
    if errors:
        err = errors[0]
        name = ".".join(str(p) for p in err.path) or (err.message.split("'")[1] if "'" in err.message else "<row>")
        reason = f"unknown answer type {rec.get('answer_type')!r}" if name == "answer_type" else err.message
        raise Quarantined(name, reason)
    pid = _text(rec["id"], "id")
    question = _text(rec["question"], "question")
    answer = _text(rec["answer"], "answer")
    choices = _choices(rec.get("choices"), "choices")
    answer_type = rec.get("answer_type") or ("choice" if choices else infer_answer_type(answer))
    meta = {"source_id": pid, "question": question, "unit": rec.get("unit"), "solution": rec.get("solution")}
    meta |= _as_dict(rec.get("metadata"))
    if answer_type == "choice":
        if not choices:
            raise Quarantined("choices", "malformed choices: answer_type choice without choices")
        meta["answer_letter"] = _letter_of(answer, choices, "answer")
    precision = rec.get("precision")
    if precision is None and answer_type == "float":
        precision = _decimals(answer)
    images = rec.get("images") or ([rec["image"]] if rec.get("image") else [])
    paths = [store.save(img) for img in images]
    meta["solution_steps"] = list(rec.get("solution_steps") or [])
    source = str(rec.get("source") or fmt)
    return _row(str(pid), with_choices(question, choices), paths, choices, answer, answer_type, precision, source, meta)


CONVERTERS = {
    "mathvista": convert_mathvista,
    "mathverse": convert_mathverse,
    "mathvision": convert_mathvision,
    "mathvl": lambda rec, store: convert_generic(rec, store, "mathvl"),
    "jsonl": convert_generic,
}


# ---------------------------------------------------------------------------------------------------
# Contamination


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


# ---------------------------------------------------------------------------------------------------
# The import


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
