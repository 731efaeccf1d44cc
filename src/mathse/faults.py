"""Failpoints: named places where a test (or a user reproducing a crash) can SIGKILL the run.

`MATHSE_FAILPOINT=rollout_shard@2` kills the process group (Snakemake and its job, as a preemption or
power loss would) the second time a process reaches the failpoint `rollout_shard`. Unset, a failpoint
costs one dictionary lookup. Names: rollout_shard, evaluate_shard (after a shard is saved),
train_checkpoint (after a checkpoint is saved), write_<artifact> (e.g. write_judgment: the temporary file is
written but not yet renamed).
"""

from __future__ import annotations

import logging
import os
import signal
from collections import Counter

log = logging.getLogger(__name__)
_hits: Counter[str] = Counter()


def failpoint(name: str) -> None:
    spec = os.environ.get("MATHSE_FAILPOINT")
    if not spec:
        return
    target, _, count = spec.partition("@")
    if target != name:
        return
    _hits[name] += 1
    if _hits[name] == int(count or 1):
        log.warning("failpoint %s reached %d time(s): sending SIGKILL to the process group", name, _hits[name])
        for handler in logging.getLogger().handlers:
            handler.flush()
        os.killpg(os.getpgrp(), signal.SIGKILL)
