"""Atomic writes: a file appears whole or not at all, also when two jobs write it at once."""

from __future__ import annotations

import glob
import os
import re
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path

_HOST = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname()) or "host"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by another user
        return True
    return True


def atomic_path(path: str | Path) -> tuple[Path, Path]:
    """`path` and a fresh temporary sibling named for this host and process (`.NAME.HOST-PID.XXXX.tmp`).

    Temporary files of writers that died on this host (their process is gone) are removed; those of live
    writers, here or on another host sharing the folder, are left alone: two jobs writing the same file
    (a shared cache entry) both succeed, the last rename winning.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mine = f".{path.name}.{_HOST}-"
    for stale in path.parent.glob(f"{glob.escape(mine)}*.tmp"):
        pid = stale.name[len(mine) :].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f"{mine}{os.getpid()}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return path, Path(tmp)


def write_atomic(path: str | Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp)` on a temporary sibling of `path`, then rename it to `path`: all or nothing."""
    path, tmp = atomic_path(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(text: str, path: str | Path) -> None:
    write_atomic(path, lambda tmp: tmp.write_text(text))
