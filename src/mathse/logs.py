"""Logging for rule scripts: one file per rule and round, plus stderr."""

from __future__ import annotations

import logging
import sys
from pathlib import Path


def setup_logging(path: str | None = None, level: int = logging.INFO) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(path, mode="w"))
    logging.basicConfig(
        level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s", handlers=handlers, force=True
    )
    for noisy in ("httpx", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
