"""Shared fixtures: a tiny model and small procedural problem tables, made once per session."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from mathse.config import DataConfig, TinyModelConfig
from mathse.data import prepare
from mathse.tiny_model import make_tiny_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("data")
    cfg = DataConfig(n_seed=12, n_pool=9, n_test=6)
    prepare(
        0,
        cfg,
        str(d / "seed.parquet"),
        str(d / "pool.parquet"),
        {"synthetic": str(d / "bench/synthetic.parquet")},
    )
    return d


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("model") / "tiny"
    make_tiny_model(str(d), TinyModelConfig(), DataConfig(), seed=0)
    return d


PLANTED_KEY_ENV = "MATHSE_TEST_API_KEY"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def planted_key() -> str:
    """An API key that must never appear in any file the pipeline writes."""
    return "sk-mathse-PLANTED-" + secrets.token_hex(12)


@pytest.fixture(scope="session")
def served_model(tiny_model_dir, planted_key, tmp_path_factory):
    """`python -m mathse.serve` on loopback serving the tiny model, requiring the planted key; stopped at the end.

    Yields (base_url, served model name, the server's log file).
    """
    port = free_port()
    log_path = tmp_path_factory.mktemp("serve") / "server.log"
    env = {**os.environ, PLANTED_KEY_ENV: planted_key, "PYTHONPATH": str(ROOT / "src")}
    cmd = [sys.executable, "-m", "mathse.serve", str(tiny_model_dir), "--port", str(port)]
    cmd += ["--served-model-name", "tiny-teacher", "--api-key-env", PLANTED_KEY_ENV, "--threads", "1"]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"mathse.serve exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                if requests.get(f"{base_url}/models", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"mathse.serve did not start in 120 s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield base_url, "tiny-teacher", log_path
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
