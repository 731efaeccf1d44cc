"""Warm job starts for local runs: a job runs in a fork of a process that has already imported torch,
torchvision, transformers and this package, instead of importing them itself (about 4 s of CPU per job, for
tiny-model jobs that then work for 1-2 s).

The Snakefile's `onstart` (a local run only: not a dry run, not SLURM, not a job on a node) calls `start`, which
launches `python -m mathse.jobserver SOCKET` with a Unix socket in a private folder (mode 0700) and exports
MATHSE_JOB_SERVER=SOCKET to the jobs. Each rule script's first statement is `delegate()`: it sends the job's
command line, working folder, environment, process group and standard streams to the server, which forks; the
fork joins the job's process group, runs the script as `python script` would, and the job exits with its status
(or dies by its signal). The job and its fork are one unit: killing the job kills the fork, and a failpoint or
Ctrl-C that kills the job's process group kills both. Without a server (MATHSE_JOB_SERVER unset or `off`, or a
server that cannot be reached) a job runs in its own process as before: the server changes where a job's
imports come from, never what it computes (tests/test_jobserver.py compares the artifacts of both ways).
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import io
import json
import logging
import os
import random
import runpy
import selectors
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback

ENV = "MATHSE_JOB_SERVER"  # the socket's path in a job's environment; `off` disables the server
IN_SERVER = "MATHSE_IN_JOB_SERVER"  # a fork's environment: the server's pid (its script runs here, not delegated)
MAX_REQUEST = 1 << 20  # command line and environment, as JSON
# Imported once by the server. Each is optional: a module that fails to import is imported (or fails) in the
# job itself, as without a server. The transformers model and processor modules are those that loading the
# tiny Qwen2-VL and InternVL checkpoints imports lazily.
PRELOAD = (
    "numpy",
    "polars",
    "torch",
    "torchvision",
    "transformers",
    "transformers.models.qwen2_vl.modeling_qwen2_vl",
    "transformers.models.qwen2_vl.processing_qwen2_vl",
    "transformers.models.qwen2_vl.image_processing_qwen2_vl",
    "transformers.models.qwen2_vl.image_processing_qwen2_vl_fast",
    "transformers.models.qwen2_vl.video_processing_qwen2_vl",
    "transformers.models.internvl.modeling_internvl",
    "transformers.models.internvl.processing_internvl",
    "transformers.models.internvl.video_processing_internvl",
    "transformers.models.got_ocr2.image_processing_got_ocr2_fast",
    "peft",
    "snakemake.iocontainers",
    "snakemake.logging",
    "mathse.generation.rollout",
    "mathse.judging.orm",
    "mathse.judging.orm_train",
    "mathse.judging.teacher",
    "mathse.training.train",
    "mathse.training.assemble",
    "mathse.reporting.summarize",
    "mathse.reporting.curves",
    "mathse.reporting.report",
    "mathse.problems.data",
)

log = logging.getLogger(__name__)
_server: subprocess.Popen | None = None


# --- the job's side -------------------------------------------------------------------------------------------


def delegate() -> None:
    """Run this script in the job server and exit with its status; return at once when there is none (the
    script then runs here) or when this already is the server's fork."""
    path = os.environ.get(ENV)
    if not path or path == "off" or os.environ.get(IN_SERVER):
        return
    request = {"argv": sys.argv, "cwd": os.getcwd(), "env": dict(os.environ), "pgid": os.getpgrp()}
    try:
        payload = json.dumps(request).encode()
    except ValueError:  # an environment variable that is not text: run here
        return
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    _flush()
    try:
        sock.connect(path)
        socket.send_fds(sock, [payload], [0, 1, 2])
    except OSError:  # no server (it has stopped, or this job runs elsewhere), or a request too large to send
        sock.close()
        return  # nothing started there: run here
    try:
        reply = sock.recv(64)
    except OSError:
        reply = b""
    if len(reply) != 4:
        print(f"mathse.jobserver: the job server at {path} stopped before the job finished; rerun (finished work "
              f"is kept), or set {ENV}=off to start each job in its own process", file=sys.stderr)  # fmt: skip
        os._exit(1)
    (status,) = struct.unpack("i", reply)
    if status < 0:  # the fork died by a signal: so does this process, for Snakemake and the shell to see
        signal.signal(-status, signal.SIG_DFL)
        os.kill(os.getpid(), -status)
    os._exit(status)


# --- starting and stopping the server (in the Snakemake process) ---------------------------------------------


def start(workflow) -> str | None:
    """Start the server for a local Snakemake run (from the Snakefile's onstart) and export its socket to the
    jobs; return the socket's path, or None where jobs run elsewhere or the user turned the server off."""
    global _server
    if os.environ.get(ENV) == "off" or not workflow.local_exec or not workflow.is_main_process:
        return None
    if _server is not None:
        return os.environ[ENV]
    folder = tempfile.mkdtemp(prefix="mathse-jobs-")  # mode 0700: only this user can connect
    path = os.path.join(folder, "socket")
    _server = launch(path)
    atexit.register(stop)
    if not wait_for(path, _server):
        log.warning("the job server did not start: jobs start in their own processes")
        stop()
        return None
    os.environ[ENV] = path
    return path


def launch(path: str, env: dict | None = None) -> subprocess.Popen:
    """The server process for the socket at `path`; it serves until its stdin, whose other end the caller
    holds, is closed, however the caller exits."""
    # -P: no working folder on sys.path (a fork puts its script's folder first, as `python script` does).
    return subprocess.Popen([sys.executable, "-P", "-m", "mathse.jobserver", path], stdin=subprocess.PIPE, env=env)


def wait_for(path: str, server: subprocess.Popen, timeout: float = 30.0) -> bool:
    """Whether the server listens at `path` (it binds before its imports: a fraction of a second)."""
    deadline = time.monotonic() + timeout
    while server.poll() is None and time.monotonic() < deadline:
        if os.path.exists(path):
            return True
        time.sleep(0.02)
    return False


def stop() -> None:
    global _server
    if _server is None:
        return
    server, _server = _server, None
    os.environ.pop(ENV, None)
    server.stdin.close()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()


# --- the server ----------------------------------------------------------------------------------------------


def serve(path: str) -> None:
    """Accept jobs on the socket at `path` until stdin closes; each job runs in a fork."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the jobs' forks in their groups; not this
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(path)
    os.chmod(path, 0o600)
    listener.listen(64)  # jobs that connect while the imports below run wait for them
    for name in PRELOAD:
        with contextlib.suppress(Exception):
            importlib.import_module(name)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ, "accept")
    sel.register(sys.stdin, selectors.EVENT_READ, "stdin")
    jobs: dict[int, tuple[socket.socket, int]] = {}  # pidfd -> (the job's connection, the fork's pid)
    try:
        while True:
            for key, _ in sel.select():
                what = key.data
                if what == "stdin":
                    if not os.read(sys.stdin.fileno(), 4096):
                        return  # Snakemake exited
                elif what == "accept":
                    conn, _ = listener.accept()
                    if _peer_uid(conn) != os.getuid():
                        conn.close()
                        continue
                    sel.register(conn, selectors.EVENT_READ, ("request", None))
                elif what[0] == "request":
                    conn = key.fileobj
                    sel.unregister(conn)
                    pid = _start_job(conn, listener)
                    if pid is None:
                        conn.close()
                        continue
                    pidfd = os.pidfd_open(pid)
                    jobs[pidfd] = (conn, pid)
                    sel.register(pidfd, selectors.EVENT_READ, ("exited", None))
                    sel.register(conn, selectors.EVENT_READ, ("client", pid))
                elif what[0] == "client":  # the job wrote nothing more, so it is gone: its fork goes too
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(what[1], signal.SIGKILL)
                    sel.unregister(key.fileobj)
                elif what[0] == "exited":
                    pidfd = key.fd
                    conn, pid = jobs.pop(pidfd)
                    sel.unregister(pidfd)
                    os.close(pidfd)
                    _, status = os.waitpid(pid, 0)
                    with contextlib.suppress(OSError):
                        conn.send(struct.pack("i", os.waitstatus_to_exitcode(status)))
                    with contextlib.suppress(KeyError, ValueError):
                        sel.unregister(conn)
                    conn.close()
    finally:
        for _conn, pid in jobs.values():  # Snakemake died with jobs running: they end with it
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        listener.close()
        with contextlib.suppress(OSError):
            os.unlink(path)
            os.rmdir(os.path.dirname(path))  # start's private folder (left alone when anything else is in it)


def _peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


def _start_job(conn: socket.socket, listener: socket.socket) -> int | None:
    try:
        data, fds, _, _ = socket.recv_fds(conn, MAX_REQUEST, 3)
        request = json.loads(data)
    except (OSError, ValueError):
        return None
    if len(fds) != 3:
        for fd in fds:
            os.close(fd)
        return None
    _flush()  # nothing buffered here is written twice, by the fork too
    pid = os.fork()
    if pid == 0:
        try:
            listener.close()
            conn.close()
            code = _run_job(request, fds)
        except BaseException:  # noqa: BLE001 - the fork must never return into the server's loop
            traceback.print_exc()
            code = 1
        os._exit(code)
    for fd in fds:
        os.close(fd)
    return pid


def _run_job(request: dict, fds: list[int]) -> int:
    """In the fork: become the job (its process group, streams, folder, environment, argv) and run its script."""
    with contextlib.suppress(OSError):
        os.setpgid(0, request["pgid"])
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), line_buffering=os.isatty(1))
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), line_buffering=True, errors="backslashreplace")
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"], **{IN_SERVER: str(os.getppid())})
    tempfile.tempdir = None  # TMPDIR as the job has it
    random.seed()  # a new process's random state, not the server's
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()
    if "torch" in sys.modules and os.environ.get("OMP_NUM_THREADS", "").isdigit():
        sys.modules["torch"].set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    script = request["argv"][0]
    sys.argv = list(request["argv"])
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    code = 0
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exit_:
        code = _exit_code(exit_.code)
    except BaseException:  # noqa: BLE001 - reported as Python reports an uncaught exception
        traceback.print_exc()
        code = 1
    with contextlib.suppress(Exception):
        atexit._run_exitfuncs()  # what the interpreter's exit would run (logging's flush, among others)
    with contextlib.suppress(Exception):
        _flush()
    return code


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        stream.flush()


def _exit_code(code) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


if __name__ == "__main__":
    serve(sys.argv[1])
