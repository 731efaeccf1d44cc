"""Logging for rule scripts: one file per rule and round, plus stderr."""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

from mathse.jobserver import IN_SERVER


def setup_logging(path: str | None = None, level: int = logging.INFO, append: bool = False) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(path, mode="a" if append else "w"))
    logging.basicConfig(
        level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s", handlers=handlers, force=True
    )
    for noisy in ("httpx", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if server := os.environ.get(IN_SERVER):
        logging.getLogger("mathse.jobserver").info("job started warm, in a fork of the job server (pid %s)", server)


class Progress:
    """A tqdm bar with a rate (quiet when stderr is not a terminal) and a log line at every tenth of the
    work, so that a rule's log shows how far a long step got and how fast, terminal or not."""

    def __init__(self, total: int, desc: str, unit: str, logger: logging.Logger, steps: int = 10):
        from tqdm import tqdm

        self.total, self.desc, self.unit, self.log = total, desc, unit, logger
        self.bar = tqdm(total=total, desc=desc, unit=unit, disable=None, mininterval=2)
        self.done, self.t0 = 0, time.perf_counter()
        self.marks = sorted({max(1, round(total * i / steps)) for i in range(1, steps + 1)}) if total else []

    def update(self, n: int = 1, **postfix) -> None:
        self.done += n
        self.bar.update(n)
        if postfix:
            self.bar.set_postfix(**postfix)
        if self.marks and self.done >= self.marks[0]:
            while self.marks and self.done >= self.marks[0]:
                self.marks.pop(0)
            rate = self.done / max(time.perf_counter() - self.t0, 1e-9)
            extra = "".join(f", {k} {v}" for k, v in postfix.items())
            self.log.info(
                "%s: %d/%d %s (%.0f%%), %.1f %s/s%s",
                self.desc, self.done, self.total, self.unit, 100 * self.done / self.total, rate, self.unit, extra,
            )  # fmt: skip

    def close(self) -> None:
        self.bar.close()
