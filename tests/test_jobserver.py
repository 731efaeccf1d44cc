"""The warm job server (mathse.jobserver): a job handed to it runs as `python script` would, in a fork of a
process that imported torch once, and dies with its job; a Snakemake run's artifacts are the same either way."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_workflow import SNAKEMAKE, write_config

from mathse.artifacts import same_artifact
from mathse.jobserver import ENV, launch, wait_for

ROOT = Path(__file__).resolve().parents[1]

# A rule script's shape: hand itself to the server first, then work. This one reports what it sees.
SCRIPT = textwrap.dedent(
    """
    from mathse.jobserver import delegate

    delegate()

    import json, os, sys, time
    import torch

    env = os.environ
    print(json.dumps({"pid": os.getpid(), "ppid": os.getppid(), "pgid": os.getpgrp(), "argv": sys.argv,
                      "cwd": os.getcwd(), "job_var": env.get("JOB_VAR"), "warm": env.get("MATHSE_IN_JOB_SERVER"),
                      "threads": torch.get_num_threads(), "path0": sys.path[0]}), flush=True)
    print("to stderr", file=sys.stderr, flush=True)
    action = sys.argv[1]
    if action == "sleep":
        time.sleep(60)
    elif action == "raise":
        raise ValueError("the job's own error")
    elif action == "kill_group":  # what a failpoint does
        os.killpg(os.getpgrp(), 9)
    elif action == "die_by_signal":
        os.kill(os.getpid(), 15)
    sys.exit(int(sys.argv[2]) if len(sys.argv) > 2 else 0)
    """
)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("jobserver")
    sock = str(folder / "socket")
    proc = launch(sock, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert wait_for(sock, proc)
    yield proc, sock
    if proc.poll() is None:
        proc.stdin.close()
        proc.wait(timeout=30)


@pytest.fixture
def script(tmp_path) -> Path:
    path = tmp_path / "scripts" / "job.py"
    path.parent.mkdir()
    path.write_text(SCRIPT)
    return path


def job_env(sock: str, **extra) -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src"), ENV: sock, "JOB_VAR": "from the job", **extra}


def run_job(script: Path, sock: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
    env = job_env(sock, OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, env=env, cwd=script.parent.parent,
        timeout=120, **kwargs,
    )  # fmt: skip


def seen(proc: subprocess.CompletedProcess) -> dict:
    return json.loads(proc.stdout.splitlines()[0])


def test_a_job_runs_in_a_fork_of_the_server_as_python_would_run_it(server, script):
    proc_server, sock = server
    proc = run_job(script, sock, "exit", "3")
    assert proc.returncode == 3, proc.stderr
    job = seen(proc)
    assert job["ppid"] == proc_server.pid and job["warm"] == str(proc_server.pid)  # a fork of the server
    assert job["argv"] == [str(script), "exit", "3"] and job["cwd"] == str(script.parent.parent)
    assert job["job_var"] == "from the job" and job["threads"] == 1  # the job's environment, not the server's
    assert job["path0"] == str(script.parent)  # sys.path as `python script` has it
    assert proc.stderr.strip().endswith("to stderr")


def test_a_job_the_server_cannot_take_runs_in_its_own_process(server, script):
    """An environment too large for one message (or not text) is not sent: the job runs where it started."""
    proc_server, sock = server
    env = job_env(sock, **{f"LARGE_{i}": "x" * 100_000 for i in range(10)})  # 1 MB, each under the kernel's limit
    proc = subprocess.run([sys.executable, str(script), "exit"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert seen(proc)["warm"] is None and seen(proc)["ppid"] != proc_server.pid


def test_a_failing_job_reports_its_traceback_and_status(server, script):
    _, sock = server
    proc = run_job(script, sock, "raise")
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "ValueError: the job's own error" in proc.stderr

    proc = run_job(script, sock, "die_by_signal")  # the job dies by the fork's signal, as Snakemake expects
    assert proc.returncode == -signal.SIGTERM


# Snakemake's part: start the server, then a job in a process group of its own (the test's session is not
# killed), which kills its group as a failpoint does.
DRIVER = """
import json, subprocess, sys
from mathse.jobserver import launch, wait_for
sock, script = sys.argv[1], sys.argv[2]
server = launch(sock)
assert wait_for(sock, server)
job = subprocess.run([sys.executable, script, "kill_group"], process_group=0, capture_output=True, text=True)
fork = json.loads(job.stdout.splitlines()[0])["pid"]
print(json.dumps({"returncode": job.returncode, "fork": fork, "server_alive": server.poll() is None}))
server.stdin.close()
server.wait()
"""


def gone(pid: int) -> bool:
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def test_killing_the_jobs_process_group_kills_the_fork_too(tmp_path, script):
    """A failpoint (or Ctrl-C) kills the job's process group: the fork has joined it, the server has not."""
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, str(tmp_path / "socket"), str(script)], capture_output=True, text=True,
        env=job_env(""), timeout=120, start_new_session=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["returncode"] == -signal.SIGKILL and result["server_alive"]
    assert gone(result["fork"])


def test_a_killed_job_takes_its_fork_with_it(server, script):
    _, sock = server
    job = subprocess.Popen([sys.executable, str(script), "sleep"], stdout=subprocess.PIPE, text=True, env=job_env(sock))
    fork = json.loads(job.stdout.readline())["pid"]
    assert fork != job.pid
    job.kill()  # the job alone (as Snakemake cancels a job), not its process group
    job.wait(timeout=30)
    assert gone(fork), f"the fork {fork} outlived its job"


def test_the_server_stops_when_its_snakemake_exits_and_jobs_then_run_alone(server, script):
    """Last of the tests on the module's server: it stops it."""
    proc, sock = server
    assert seen(run_job(script, sock, "exit"))["warm"] == str(proc.pid)
    proc.stdin.close()  # what Snakemake's exit does, however it exits
    assert proc.wait(timeout=30) == 0
    assert not Path(sock).parent.exists()  # its socket and (empty) folder are gone
    alone = run_job(script, sock, "exit")
    assert alone.returncode == 0 and seen(alone)["warm"] is None and seen(alone)["ppid"] != proc.pid


@pytest.mark.slow
def test_a_run_without_the_server_makes_the_same_artifacts(tmp_path, tiny_run):
    """The session's tiny run started its jobs warm; the same config with MATHSE_JOB_SERVER=off, up to round 1's
    rollouts (the tiny model, data, distillation, round 0's training, base and round-0 scores), starts each job
    in its own process and writes the same files."""
    work = tmp_path / "cold"
    write_config(work)
    targets = ["results/round_1/rollouts.parquet", "results/base/scores/synthetic.parquet",
               "results/round_0/scores/synthetic.parquet"]  # fmt: skip
    cmd = [*SNAKEMAKE, "--directory", str(work), "--configfile", str(work / "config.yaml"),
           "--profile", str(ROOT / "profiles/local"), "--cores", "2", *targets]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, env={**os.environ, ENV: "off"}, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-5000:]
    made = sorted(p.relative_to(work) for p in work.rglob("*.parquet"))
    assert len(made) >= 10 and "results/round_1/rollouts.parquet" in map(str, made)
    differing = [str(p) for p in made if not same_artifact(tiny_run / p, work / p)]
    assert not differing, f"a cold run's artifacts differ from the warm run's: {differing}"
    a = load_file(tiny_run / "results/round_0/adapter/model.safetensors")
    b = load_file(work / "results/round_0/adapter/model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    warm_log = (tiny_run / "logs/train/round_0.log").read_text()
    assert "job started warm, in a fork of the job server" in warm_log
    assert "job started warm" not in (work / "logs/train/round_0.log").read_text()
