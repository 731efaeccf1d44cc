"""The formats: the columns each needs, the field checks they share, and one converter per format from a
published record to a canonical problem row (artifacts.PROBLEM), raising Quarantined for a row that cannot be used."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from mathse.problems.benchmarks.files import BenchmarkFormatError, ImageStore, Quarantined, Record

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
# The schema file stays in mathse/, where the docs point and the package data is declared.
GENERIC_SCHEMA = Path(__file__).parents[1] / "generic_problem.schema.json"
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


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
