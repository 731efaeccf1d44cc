"""Reading a benchmark's published files: which files a SRC names, their records, and their images (each read only
from inside the data folder, size-checked, decoded once and written once under a content hash); and the two
outcomes of a bad input, a quarantined row and an unusable file."""

from __future__ import annotations

import glob
import hashlib
import io
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from mathse.problems.validate import MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS


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
