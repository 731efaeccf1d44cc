"""Answer checks bounded in time and memory, from any thread and any process.

math-verify (sympy) can run for minutes and take gigabytes on a short answer (`9^{9^{9^{9}}}`, the factorial
of a large number, a sum of a billion terms, deeply nested fractions), and its own signal-based timeout
works only in the main thread. So every symbolic check goes through three guards:

1. `too_large`: a cheap scan that refuses, before sympy sees them, answers with huge powers or towers,
   factorials or binomials of large numbers, sums and products of many terms, or deep nesting;
2. a worker process (one per thread that checks answers, started on first use) runs math-verify under a
   memory limit (RLIMIT_AS); a call past its time limit kills the worker, which the next call restarts;
3. a `Budget` per row (one answer check): all its symbolic calls and pure-Python loops share one time
   limit, so a row with many parts (a list answer, several options) cannot multiply it.

A check cut short by a guard is a verdict: not equal, with the reason (`timeout`, `memory`, `too_large`,
`error`) recorded in the row's `check` column. The limits are the `answer_check` config section.

This package imports only the standard library (math-verify only in the worker), so the worker starts
without polars or torch. The guard is checks.guards, the worker process (both sides) checks.worker; this
module holds the limits, the budgets and the bounded calls.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mathse.judging.checks.guards import too_large

if TYPE_CHECKING:
    from mathse.judging.checks.worker import Worker

log = logging.getLogger(__name__)

TIMEOUT, MEMORY, TOO_LARGE, ERROR = "timeout", "memory", "too_large", "error"
# When a row meets several, the one recorded (a timeout says the most about the row).
_SEVERITY = {TOO_LARGE: 1, ERROR: 2, MEMORY: 3, TIMEOUT: 4}


@dataclass
class Limits:
    timeout_s: float = 5.0  # one answer check (a row), all its symbolic calls together
    memory_mb: int = 1024  # the worker's address space above what it holds once started


LIMITS = Limits()


def configure(timeout_s: float | None = None, memory_mb: int | None = None) -> None:
    """Set the limits of this process's answer checks (a rule script calls it with `answer_check`)."""
    global LIMITS
    new = Limits(
        LIMITS.timeout_s if timeout_s is None else float(timeout_s),
        LIMITS.memory_mb if memory_mb is None else int(memory_mb),
    )
    if new != LIMITS:
        _results.clear()  # verdicts cut short under the old limits may not hold under the new ones
        if new.memory_mb != LIMITS.memory_mb:
            shutdown()
    LIMITS = new


class CheckTimeout(Exception):  # noqa: N818 - an outcome (the row's budget is spent), named as in the config
    """A row's budget is spent; the row's check stops here and the row is wrong with reason `timeout`."""


# ---------------------------------------------------------------------------------------------------
# One budget per answer check (a row)


class Budget:
    """The time one answer check may take, and the reason it was cut short (None while it was not)."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        self.reason: str | None = None

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def note(self, reason: str | None) -> None:
        if reason is not None and _SEVERITY[reason] > _SEVERITY.get(self.reason, 0):
            self.reason = reason

    def tick(self) -> None:
        """Raise CheckTimeout once the deadline has passed (pure-Python loops call it now and then)."""
        if time.monotonic() > self.deadline:
            self.note(TIMEOUT)
            raise CheckTimeout

    def extend(self, seconds: float) -> None:
        self.deadline += seconds


_budget: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("mathse_check_budget", default=None)


@contextlib.contextmanager
def budget(seconds: float | None = None) -> Iterator[Budget]:
    """One answer check's budget; nested calls share the outermost one."""
    outer = _budget.get()
    if outer is not None:
        yield outer
        return
    b = Budget(LIMITS.timeout_s if seconds is None else seconds)
    token = _budget.set(b)
    try:
        yield b
    finally:
        _budget.reset(token)


def tick() -> None:
    """Inside a budget: raise CheckTimeout when it is spent. Outside one: nothing."""
    b = _budget.get()
    if b is not None:
        b.tick()


def bounded(fn: Callable, *args, default=None):
    """`fn(*args)` as one answer check: (result, reason). A spent budget gives (default, 'timeout')."""
    with budget() as b:
        try:
            result = fn(*args)
        except CheckTimeout:
            return default, TIMEOUT
        return result, b.reason


# ---------------------------------------------------------------------------------------------------
# The worker processes (mathse.judging.checks.worker): one per thread that checks answers

_local = threading.local()
_workers: list[Worker] = []
_workers_lock = threading.Lock()


def _worker() -> Worker:
    w = getattr(_local, "worker", None)
    if w is None or w.pid != os.getpid() or not w.alive():  # a forked child starts its own
        # Imported here, not above: the worker runs that module as __main__ (`python -m`), and a copy this
        # package had imported first would be a second one.
        from mathse.judging.checks.worker import Worker

        w = Worker(LIMITS.memory_mb)
        _local.worker = w
        with _workers_lock:
            _workers[:] = [x for x in _workers if x.alive()] + [w]
    return w


def shutdown() -> None:
    """Stop every worker of this process (they also stop when it exits)."""
    with _workers_lock:
        workers, _workers[:] = list(_workers), []
    for w in workers:
        if w.pid == os.getpid():
            w.kill()
    _local.__dict__.pop("worker", None)


# ---------------------------------------------------------------------------------------------------
# The bounded calls

_results: dict[tuple, tuple[object, str | None]] = {}
_MAX_RESULTS = 1 << 17


def prefetch(calls: list[tuple]) -> None:
    """Run many symbolic calls (`("verify", extracted, reference)`, `("value", text)`) in batches, each under
    the full limit, memoising their results: the checks that then make them find them done."""
    todo = []
    for key in dict.fromkeys(calls):
        if key in _results:
            continue
        if any(too_large(a) for a in key[1:]):
            _results[key] = (None, TOO_LARGE)
        else:
            todo.append(key)
    while todo:
        w = _worker()
        w.wait_ready()
        n = 0
        for key, hit in zip(todo, w.call_many([(k[0], list(k[1:])) for k in todo], LIMITS.timeout_s), strict=False):
            _results[key] = hit
            n += 1
        todo = todo[n:]  # past a call the worker was killed on: the rest on a new one
    if len(_results) >= _MAX_RESULTS:
        _results.clear()


def _call(op: str, *args: str):
    """One memoised worker call under the current row's budget (or a fresh one)."""
    key = (op, *args)
    hit = _results.get(key)
    b = _budget.get()
    if hit is None:
        if any(too_large(a) for a in args):
            hit = (None, TOO_LARGE)
        else:
            limit = LIMITS.timeout_s
            seconds = limit if b is None else min(limit, b.remaining())
            if seconds <= 0:
                b.note(TIMEOUT)
                raise CheckTimeout
            w = _worker()
            waited = w.wait_ready()
            if b is not None:
                b.extend(waited)
            hit = w.call(op, list(args), seconds)
            if hit[1] == TIMEOUT and b is not None:
                b.note(TIMEOUT)
                if seconds < 0.95 * limit:  # cut short by this row's spent budget: not the pair's verdict
                    raise CheckTimeout
        if len(_results) >= _MAX_RESULTS:
            _results.clear()
        _results[key] = hit
    result, reason = hit
    if b is not None:
        b.note(reason)
    return result


def symbolic_equal(extracted: str, reference: str) -> bool:
    """math-verify: is `extracted` equivalent to `reference`? False when a guard cut the check short."""
    return bool(_call("verify", extracted, reference))


def numeric_value(text: str) -> float | None:
    """The number a LaTeX expression evaluates to (sympy through math-verify's parser), else None."""
    value = _call("value", text)
    return None if value is None else float(value)
