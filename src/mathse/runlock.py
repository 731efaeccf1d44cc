"""`python -m mathse.runlock -- CMD ...`: run CMD holding this folder's pipeline lock (the make targets do).

The lock is an OS-level lock (flock) on `.mathse.lock` in the working folder, held by this process and
passed to CMD, so the kernel releases it when they die, however they die (kill -9, a reboot). Holding it
means no other run of this pipeline started this way is active here, so a Snakemake lock left in
`.snakemake/locks/` is stale (its run was killed) and is cleared (`snakemake --unlock`) before CMD starts:
rerunning `make demo` after a crash just resumes. A second run while one is active stops at once, saying
so. A `snakemake` started by hand takes no such lock: it is left to Snakemake's own.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

LOCK_FILE = ".mathse.lock"
BUSY_EXIT = 75  # EX_TEMPFAIL: try again later


def stale_snakemake_locks(workdir: Path) -> list[Path]:
    locks = workdir / ".snakemake" / "locks"
    return sorted(locks.iterdir()) if locks.is_dir() else []


def acquire(workdir: Path) -> int | None:
    """The locked file's descriptor, or None when another run holds it."""
    fd = os.open(workdir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def holder(workdir: Path) -> str:
    try:
        return (workdir / LOCK_FILE).read_text().strip() or "unknown"
    except OSError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        print("usage: python -m mathse.runlock -- CMD [ARGS ...]", file=sys.stderr)
        return 2
    workdir = Path.cwd()
    fd = acquire(workdir)
    if fd is None:
        print(
            f"mathse: another run of this pipeline is active in {workdir} ({holder(workdir)}); "
            "wait for it to finish or stop it, then run the command again",
            file=sys.stderr,
        )
        return BUSY_EXIT
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}: {' '.join(args)}\n".encode())
    if stale_snakemake_locks(workdir):
        print("mathse: clearing a Snakemake lock left by a run that was killed (no run holds this folder)")
        subprocess.run([sys.executable, "-m", "snakemake", "--unlock"], cwd=workdir, check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    os.set_inheritable(fd, True)
    proc = subprocess.Popen(args, pass_fds=(fd,))  # CMD holds the lock too: it outlives this process
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches CMD (same process group), which stops itself
    signal.signal(signal.SIGTERM, lambda signum, frame: proc.send_signal(signum))
    rc = proc.wait()
    return 128 - rc if rc < 0 else rc


if __name__ == "__main__":
    raise SystemExit(main())
