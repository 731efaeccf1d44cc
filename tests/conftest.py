"""Shared fixtures: a tiny model and small procedural problem tables, made once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

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
