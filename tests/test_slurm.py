"""The tiny DAG through a real local SLURM cluster (.ci/slurm.sh up), and a scancel'd job resumed by a rerun."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from test_workflow import ROOT, SNAKEMAKE, write_config

from mathse.artifacts import read_table


def slurm_up() -> bool:
    if not shutil.which("sinfo"):
        return False
    proc = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True)
    return proc.returncode == 0 and any(s in proc.stdout for s in ("idle", "mix", "alloc"))


pytestmark = [
    pytest.mark.slurm,
    pytest.mark.slow,
    pytest.mark.skipif(
        not slurm_up() and os.environ.get("CI") != "true",
        reason="no local SLURM cluster (start one with: bash .ci/slurm.sh up)",
    ),
]


# The accuracy table and every rule it needs (each SLURM job waits for the executor's status checks: the report's
# figures, which a local run makes, are left out).
TARGET = "results/summary.parquet"


def snakemake_cmd(workdir: Path, *args: str) -> list[str]:
    return [*SNAKEMAKE, "--directory", str(workdir), "--configfile", str(workdir / "config.yaml"),
            "--profile", str(ROOT / "profiles/slurm-local"), *args]  # fmt: skip


def queued_jobs() -> list[tuple[str, str, str]]:
    """(job id, state, comment) of every job slurmctld still knows, finished ones included (MinJobAge)."""
    out = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i|%T|%k"], capture_output=True, text=True).stdout
    return [tuple(line.split("|", 2)) for line in out.splitlines() if line.strip()]


def test_scancelled_rollout_job_resumes_on_rerun_and_every_job_ran_on_slurm(tmp_path):
    assert slurm_up(), "CI must start the cluster first: bash .ci/slurm.sh up"
    # One problem per shard, so that the rollout job is cancelled between shards.
    write_config(tmp_path, run__rounds=1, data__n_pool=48, rollout__shard_size=1, rollout__max_new_tokens=48)
    before = {job for job, _, _ in queued_jobs()}
    proc = subprocess.Popen(snakemake_cmd(tmp_path, "--retries", "0", TARGET), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)  # fmt: skip
    shards = tmp_path / "results/round_1/rollouts.parquet.shards"
    cancelled = None
    deadline = time.monotonic() + 900
    while proc.poll() is None and time.monotonic() < deadline:
        if cancelled is None and list(shards.glob("*/shard_*.parquet")):
            running = [j for j, state, comment in queued_jobs() if "rule_rollout" in comment and state == "RUNNING"]
            if running:
                subprocess.run(["scancel", running[0]], check=True)
                cancelled = running[0]
        time.sleep(0.2)
    output = proc.communicate(timeout=60)[0]
    assert cancelled, f"the rollout job was not caught running:\n{output[-4000:]}"
    assert proc.returncode != 0, "a cancelled job must fail the run (retries are off here)"
    done = len(list(shards.glob("*/shard_*.parquet")))
    assert 1 <= done < 48 and not (tmp_path / "results/round_1/rollouts.parquet").exists()

    rerun = subprocess.run(snakemake_cmd(tmp_path, TARGET), cwd=ROOT, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-5000:]
    log = (tmp_path / "logs/rollout/round_1.log").read_text()
    assert "shards were already done and were not redone" in log
    resumed = int(log.split("resumed, ")[1].split(" of ")[0])
    assert resumed >= done
    rollouts = read_table(tmp_path / "results/round_1/rollouts.parquet", "rollout")
    remain = read_table(tmp_path / "results/round_0/remain.parquet", "problem")
    assert rollouts.height == 2 * remain.height  # tests/config_tiny.yaml samples k=2
    assert (tmp_path / "results/summary.parquet").exists()

    jobs = [(j, state, comment) for j, state, comment in queued_jobs() if j not in before]
    rules = {comment.split("_wildcards")[0].removeprefix("rule_") for _, _, comment in jobs}
    assert {"prepare", "make_tiny_model", "distill", "assemble", "train", "evaluate", "rollout", "judge",
            "reflect", "summarize"} <= rules  # fmt: skip
    assert any(j == cancelled and state == "CANCELLED" for j, state, _ in jobs)
