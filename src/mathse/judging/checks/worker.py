"""The answer-check worker process, both sides: `Worker`, the parent's handle on one (start, send calls, read each
answer within its time limit, kill), and `_serve`, the worker's loop, which runs math-verify calls one at a time
under an alarm and a memory limit (`python -m mathse.judging.checks.worker --worker MEMORY_MB`).

Standard library only; math-verify is imported in the worker alone.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from mathse.judging.checks import ERROR, MEMORY, TIMEOUT, TOO_LARGE

_STARTUP_S = 120.0  # importing math-verify can take seconds on a loaded machine; not counted in any budget
_GRACE_S = 0.5  # past a call's limit the worker's own alarm answers `timeout`; past this, it is killed


class Worker:
    """A process that runs math-verify calls one at a time, answering each within its time limit."""

    def __init__(self, memory_mb: int) -> None:
        src = str(Path(__file__).resolve().parents[3])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mathse.judging.checks.worker", "--worker", str(memory_mb)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            close_fds=True,
        )
        self.pid = os.getpid()
        self.ready = False
        self._buf = b""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def _readline(self, seconds: float) -> bytes | None:
        deadline = time.monotonic() + seconds
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return b""
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line

    def wait_ready(self) -> float:
        """Wait for the worker's imports; the seconds waited (not part of any check's time)."""
        t0 = time.monotonic()
        if not self.ready:
            line = self._readline(_STARTUP_S)
            if line != b"ready":
                self.kill()
                raise RuntimeError("the answer-check worker did not start (is math-verify installed?)")
            self.ready = True
        return time.monotonic() - t0

    def call(self, op: str, args: list, seconds: float) -> tuple[object, str | None]:
        """(result, reason): reason None when the call finished, else why it was cut short."""
        return next(self.call_many([(op, args)], seconds))

    def call_many(self, calls: list[tuple[str, list]], seconds: float, window: int = 64) -> Iterator[tuple]:
        """(result, reason) of each call in order, `window` in flight (one wake-up per batch, not per call).

        Each answer is due `seconds` (+ a grace) after the one before it, as the worker runs them in turn.
        A call the worker had to be killed on (or died on) is the last answered: the caller starts a new
        worker for the rest.
        """
        sent = done = 0
        while done < len(calls):
            try:
                while sent < len(calls) and sent - done < window:
                    op, args = calls[sent]
                    self.proc.stdin.write((json.dumps([op, args, seconds]) + "\n").encode())
                    sent += 1
                self.proc.stdin.flush()
            except (BrokenPipeError, OSError):
                self.kill()
                yield None, ERROR
                return
            line = self._readline(seconds + _GRACE_S)
            if not line:  # None: stuck inside a C routine (huge integer arithmetic), only a kill stops it
                self.kill()
                yield None, TIMEOUT if line is None else ERROR
                return
            result, reason = json.loads(line)
            done += 1
            if reason in (MEMORY, ERROR):  # a MemoryError can leave sympy's caches half-built
                self.kill()
                yield result, reason
                return
            yield result, reason

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.kill()
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        for f in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                f.close()


# ---------------------------------------------------------------------------------------------------
# The worker's side


class _Alarm(BaseException):  # math-verify catches Exception; this must get through to the loop
    pass


def _on_alarm(signum, frame):
    raise _Alarm


def _serve(memory_mb: int) -> None:
    import resource
    import signal
    from functools import lru_cache

    logging.disable(logging.CRITICAL)
    _die_with_parent()
    from math_verify import parse, verify

    @lru_cache(maxsize=65536)
    def parsed(text: str):
        return parse(f"${text}$", parsing_timeout=None)

    def run(op: str, args: list):
        if op == "verify":
            gold, pred = parsed(args[1]), parsed(args[0])
            return bool(gold and pred and verify(gold, pred, timeout_seconds=None))
        if op == "value":
            p = parsed(args[0])
            try:
                v = float(p[0]) if p else None
            except (TypeError, ValueError, OverflowError, ArithmeticError):
                return None
            return v if v is None or math.isfinite(v) else None
        raise ValueError(f"unknown op {op!r}")

    with contextlib.suppress(ValueError, OSError):
        vm = _vm_bytes()
        if vm:
            resource.setrlimit(resource.RLIMIT_AS, (vm + memory_mb * 2**20, resource.RLIM_INFINITY))
    signal.signal(signal.SIGALRM, _on_alarm)
    run("verify", ["0.5", "\\frac{1}{2}"])  # the parsers' first use builds their tables: not in any check's time
    out = sys.stdout.buffer
    out.write(b"ready\n")
    out.flush()
    for line in sys.stdin.buffer:
        op, args, seconds = json.loads(line)
        try:
            signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.001))
            try:
                reply = [run(op, args), None]
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except _Alarm:
            reply = [None, TIMEOUT]
        except MemoryError:
            reply = [None, MEMORY]
        except RecursionError:
            reply = [None, TOO_LARGE]
        except Exception:  # noqa: BLE001 - whatever sympy raises, the pair is not shown equal
            reply = [None, None]
        out.write((json.dumps(reply) + "\n").encode())
        out.flush()


def _vm_bytes() -> int | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return None


def _die_with_parent() -> None:
    """Linux: the kernel kills the worker when the process that started it dies (even by SIGKILL)."""
    with contextlib.suppress(Exception):
        import ctypes
        import signal

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:  # the parent died before the prctl
            os._exit(0)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        _serve(int(sys.argv[2]))
