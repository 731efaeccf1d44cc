"""Training problems from local files (data.source: files): seed part and pool from any import format."""

import json
import shutil
from pathlib import Path

import polars as pl
import pytest
import yaml
from test_workflow import planned_jobs, snakemake, write_config

from mathse.artifacts import read_table
from mathse.config import DataConfig, load_config
from mathse.problems.data import generate_split, prepare


def export_jsonl(folder: Path, n: int, split: str = "pool") -> Path:
    """Procedural problems written as a generic JSONL dataset with images beside it (GeoQA+ style)."""
    table = generate_split(3, split, n, DataConfig(), folder / "gen")
    (folder / "img").mkdir(parents=True, exist_ok=True)
    lines = []
    for r in table.iter_rows(named=True):
        image = f"img/{Path(r['images'][0]).name}"
        shutil.copy(r["images"][0], folder / image)
        row = {"id": r["problem_id"], "question": r["question"], "image": image, "answer": r["answer"]}
        lines.append(json.dumps(row | {"solution_steps": r["solution_steps"]}))
    shutil.rmtree(folder / "gen")
    path = folder / "train.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def _prepare(d: Path, cfg: DataConfig, seed: int = 0) -> dict[str, pl.DataFrame]:
    prepare(seed, cfg, str(d / "seed.parquet"), str(d / "pool.parquet"), {}, str(d / "quarantine.parquet"))
    return {name: pl.read_parquet(d / f"{name}.parquet") for name in ("seed", "pool", "quarantine")}


def test_seed_part_is_drawn_from_a_file_pool_and_bad_rows_are_quarantined(tmp_path, benchmark_files):
    cfg = DataConfig(
        source="files", n_seed=2, pool_sources={"geo": {"format": "jsonl", "path": str(benchmark_files["jsonl"])}}
    )
    out = _prepare(tmp_path / "a", cfg)
    # The generic fixture has 4 usable rows, two with bad fields and one line that is not JSON.
    assert out["seed"].height == 2 and out["pool"].height == 2
    ids = out["seed"]["problem_id"].to_list() + out["pool"]["problem_id"].to_list()
    assert sorted(ids) == ["geo/g1", "geo/g2", "geo/g3", "geo/g4"]
    reasons = dict(zip(out["quarantine"]["problem_id"], out["quarantine"]["reason"], strict=True))
    assert reasons["geo/g5"] == "unknown answer type 'matrix'"
    assert "malformed choices" in reasons["geo/g6"]
    assert out["quarantine"].filter(pl.col("problem_id").is_null())["reason"].str.contains("JSON").all()
    for path in out["seed"]["images"].explode():
        assert Path(path).exists()
    # The same seed draws the same seed part; another seed may draw another.
    again = _prepare(tmp_path / "b", cfg)
    assert again["seed"]["problem_id"].to_list() == out["seed"]["problem_id"].to_list()


def test_seed_sources_and_pool_sources_keep_their_ids_apart(tmp_path, benchmark_files):
    src = {"format": "jsonl", "path": str(benchmark_files["jsonl"])}
    cfg = DataConfig(source="files", seed_sources={"a": src}, pool_sources={"b": src})
    out = _prepare(tmp_path, cfg)
    assert out["seed"]["problem_id"].str.starts_with("a/").all() and out["seed"].height == 4
    assert out["pool"]["problem_id"].str.starts_with("b/").all() and out["pool"].height == 4


@pytest.mark.parametrize(
    "data, message",
    [
        ({"source": "files"}, "data.pool_sources and data.seed_sources are empty"),
        ({"pool_sources": {"x": {"format": "jsonl", "path": "x.jsonl"}}}, "also set data.source: files"),
        (
            {"source": "files", "pool_sources": {"a b": {"format": "jsonl", "path": "x.jsonl"}}},
            "a source name is letters",
        ),
    ],
)
def test_source_config_mistakes_are_named(data, message):
    with pytest.raises(ValueError, match=message):
        load_config({"data": data})


@pytest.mark.slow
def test_round_0_trains_on_a_file_pool_and_reports_contamination(tmp_path):
    """A file pool through prepare, distill and assemble; a benchmark sharing a pool problem is reported."""
    pool = export_jsonl(tmp_path / "pool", 10)
    bench = tmp_path / "bench.jsonl"
    first = json.loads(pool.read_text().splitlines()[0])
    bench.write_text(
        json.dumps({"id": "b1", "question": first["question"], "answer": first["answer"]}) + "\n"
        + json.dumps({"id": "b2", "question": "A question nobody trained on?", "answer": "3"}) + "\n"
    )  # fmt: skip
    write_config(tmp_path)
    cfg = yaml.safe_load((tmp_path / "config.yaml").read_text())
    cfg["data"].update(source="files", n_seed=4, pool_sources={"geo": {"format": "jsonl", "path": str(pool)}})
    cfg["data"]["benchmarks"] = {"held": {"format": "jsonl", "path": str(bench)}}
    cfg["eval"]["suites"] = ["synthetic", "held"]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    snakemake(tmp_path, "--cores", "2", "results/round_0/train.parquet", "results/data/bench/held.parquet")

    seed = read_table(tmp_path / "results/data/seed.parquet", "problem")
    assert seed.height == 4 and seed["problem_id"].str.starts_with("geo/").all()
    train = read_table(tmp_path / "results/round_0/train.parquet", "train")
    assert train.height > 0 and set(train["problem_id"]) <= set(seed["problem_id"])
    remain = read_table(tmp_path / "results/round_0/remain.parquet", "problem")
    assert remain.height >= 6  # the pool's 6 problems, and any seed problem the teacher got wrong
    found = [
        json.loads(line) for line in (tmp_path / "results/data/bench/held.contamination.jsonl").read_text().splitlines()
    ]
    assert [f["problem_id"] for f in found] == ["b1"]
    # Editing the pool file makes prepare, and what depends on it, rerun (Snakemake compares checksums too,
    # so the edit must change the content).
    pool.write_text(pool.read_text().replace(first["question"], first["question"] + " (edited)", 1))
    jobs = planned_jobs(snakemake(tmp_path, "--cores", "2", "-n", "results/round_0/train.parquet"))
    assert jobs["prepare"] == 1 and jobs["distill"] == 1
