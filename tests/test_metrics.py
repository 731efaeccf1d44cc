"""Training you can watch: per-step metrics beside the weights, kept exact across a kill and resume, and the
same scalars in TensorBoard's event files; trackers that are not installed are config errors."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from importlib.util import find_spec
from pathlib import Path

import polars as pl
import pytest
from test_reliability import run_killed

from mathse.artifacts import SCHEMAS, read_table, write_table
from mathse.config import ConfigError, TrainConfig, load_config
from mathse.training.metrics import METRICS_FILE, SCALARS, Trackers, kept_rows

TRAIN = """
    from mathse.config import TrainConfig
    from mathse.logs import setup_logging
    from mathse.training.train import train
    setup_logging("{log}")
    cfg = TrainConfig(num_train_epochs=1, min_steps=12, max_steps=12, save_steps=4, per_device_train_batch_size=4,
                      metrics_flush_steps=3, report_to=["tensorboard"])
    train("{data}", "{model}", None, "{out}", cfg, round_idx=1, seed=0, prompt_version="v1",
          run_name="demo/round_1", logging_dir="{tb}")
"""


def metric_rows(steps: list[int], **fixed) -> pl.DataFrame:
    """train_metrics rows for `steps`: the loss is 10 - step, a marker of which attempt wrote them in `run`."""
    n = len(steps)
    cols = {c: [0.0] * n if t == pl.Float64 else [0] * n for c, t in SCHEMAS["train_metrics"].items()}
    cols |= {"run": ["r"] * n, "job": ["round_1"] * n, "step": steps, "loss": [10.0 - s for s in steps]}
    cols |= {k: [v] * n for k, v in fixed.items()}
    return pl.DataFrame(cols, schema=SCHEMAS["train_metrics"])


def test_a_resumed_job_keeps_the_rows_up_to_its_checkpoint_and_drops_the_rest(tmp_path):
    path = tmp_path / METRICS_FILE
    write_table(metric_rows(list(range(1, 10))), path, "train_metrics")
    assert kept_rows(path, 8)["step"].to_list() == list(range(1, 9))
    assert kept_rows(path, 0).height == 0, "no checkpoint: every step is trained again"
    assert kept_rows(tmp_path / "none.parquet", 0).height == 0
    path.write_text("not parquet")  # a file that does not read as the artifact is ignored, not trusted
    assert kept_rows(path, 4).height == 0


def test_an_uninstalled_tracker_is_a_config_error_naming_it():
    missing = [name for name in ("wandb", "mlflow", "trackio", "tensorboard") if find_spec(name) is None]
    if not missing:
        pytest.skip("every tracker is installed here")
    with pytest.raises(ValueError, match=rf"{missing[0]}.*not installed.*pip install 'mathse\[{missing[0]}\]'"):
        TrainConfig(report_to=[missing[0]])
    with pytest.raises(ConfigError, match=rf"orm\.train\.report_to: .*{missing[0]}"):
        load_config({"orm": {"train": {"report_to": [missing[0]]}}})
    with pytest.raises(ConfigError, match="train.report_to"):
        load_config({"train": {"report_to": ["comet"]}})  # not a tracker this pipeline knows


def scalars(event_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar series in a TensorBoard run folder, read back the way TensorBoard reads it."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(event_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


@pytest.mark.slow  # three processes that each load torch and train 12 steps
def test_killed_training_meters_every_step_exactly_once_in_parquet_and_tensorboard(
    tmp_path, train_table, tiny_model_dir
):
    fmt = dict(data=train_table, model=tiny_model_dir)

    def code(name: str, log: str) -> str:
        return textwrap.dedent(TRAIN.format(out=tmp_path / name, log=tmp_path / log, tb=tmp_path / f"tb_{name}", **fmt))

    subprocess.run([sys.executable, "-c", code("a", "a.log")], check=True, capture_output=True)
    # Flushes at steps 3, 4 (checkpoint), 6, 8 (checkpoint), 9: killed after the fifth, the rows on disk run
    # one step past the last checkpoint, as after any kill between checkpoints.
    run_killed(code("b", "b1.log"), "train_metrics@5", tmp_path)
    live = read_table(tmp_path / "b.ckpt" / METRICS_FILE, "train_metrics")
    assert live["step"].to_list() == list(range(1, 10))
    assert not (tmp_path / "b").exists()
    subprocess.run([sys.executable, "-c", code("b", "b2.log")], check=True, capture_output=True)
    log = (tmp_path / "b2.log").read_text()
    assert "resumed from the checkpoint at step 8/12" in log and "dropped the metrics of 1 steps" in log

    a = read_table(tmp_path / "a" / METRICS_FILE, "train_metrics")
    b = read_table(tmp_path / "b" / METRICS_FILE, "train_metrics")
    assert b["step"].to_list() == list(range(1, 13)), "each step once, none missing"
    assert not (tmp_path / "b.ckpt").exists()
    # Same config and seed: the same rows but for the wall-clock columns (and the resumed steps match too).
    wall = ["step_seconds", "tokens_per_second", "examples_per_second", "wall_seconds"]
    assert a.drop(wall).equals(b.drop(wall))
    row = a.row(0, named=True)
    assert (row["run"], row["job"], row["round"], row["processes"]) == ("demo/round_1", "round_1", 1, 1)
    assert a["examples"].to_list() == [4] * 12 and (a["tokens"] > 4).all()
    assert a["epoch"].to_list() == pytest.approx([4 * s / 12 for s in range(1, 13)])  # 12 seed problems
    assert (a["grad_norm"] > 0).all() and ((a["padding_share"] >= 0) & (a["padding_share"] < 1)).all()
    # No warmup step at 12 steps (5%), then the cosine: from the peak lr, falling every step.
    lr = a["learning_rate"].to_list()
    assert lr[0] == pytest.approx(TrainConfig().lr) and all(x > y for x, y in zip(lr, lr[1:], strict=False))
    assert (b["wall_seconds"].diff().drop_nulls() > 0).all(), "the wall clock continues across the resume"

    # TensorBoard: the killed attempt's events past the checkpoint are purged, so each step appears once
    # with the value the parquet holds.
    for name, table in (("a", a), ("b", b)):
        series = scalars(tmp_path / f"tb_{name}")
        assert set(series) == {f"train/{k}" for k in SCALARS}
        for key in ("loss", "learning_rate", "grad_norm"):
            steps, values = zip(*series[f"train/{key}"], strict=True)
            assert list(steps) == list(range(1, 13)), (name, key, steps)
            assert list(values) == pytest.approx(table[key].to_list(), rel=1e-6), (name, key)


@pytest.fixture(scope="module")
def train_table(tmp_path_factory, data_dir):
    from test_model import _train_table

    path = tmp_path_factory.mktemp("train") / "train.parquet"
    _train_table(data_dir, path)
    return path


@pytest.mark.slow  # starts Snakemake (a dry run, seconds)
def test_the_workflow_stops_on_an_uninstalled_tracker_before_any_job(tmp_path):
    from test_workflow import snakemake, write_config

    missing = [name for name in ("wandb", "mlflow", "trackio") if find_spec(name) is None]
    if not missing:
        pytest.skip("every tracker is installed here")
    write_config(tmp_path, train__report_to=[missing[0]])
    proc = snakemake(tmp_path, "-n", "--cores", "1", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and f"train.report_to: Value error, tracker(s) ['{missing[0]}'] not installed" in out
    assert "Job stats" not in out, "nothing may be planned, let alone run"


@pytest.mark.slow
def test_each_round_of_the_dag_reports_its_steps_to_tensorboard_under_its_run_name(tiny_run):
    """tests/config_tiny.yaml sets train.report_to: [tensorboard]; run.name is null, so runs are named after
    results_dir and the round."""
    for r in (0, 1, 2):
        m = read_table(tiny_run / f"results/round_{r}/adapter/{METRICS_FILE}", "train_metrics")
        assert set(m["run"]) == {f"results/round_{r}"} and set(m["job"]) == {f"round_{r}"}
        series = scalars(tiny_run / f"results/tensorboard/round_{r}")
        steps, values = zip(*series["train/loss"], strict=True)
        assert list(steps) == m["step"].to_list() == [1, 2, 3]
        assert list(values) == pytest.approx(m["loss"].to_list(), rel=1e-6)


@pytest.mark.slow  # two tiny trainings in this process
def test_the_orms_curriculum_stage_and_whole_set_training_are_two_jobs_of_its_metrics(
    tmp_path, train_table, tiny_model_dir
):
    from mathse.judging.orm_train import train_orm

    rows = read_table(train_table, "train")
    finals = rows.head(4).with_columns(pl.col("problem_id") + "#final")
    write_table(pl.concat([rows, finals]), tmp_path / "orm_train.parquet", "train")
    out = tmp_path / "orm/adapter"
    kwargs = dict(train_path=str(tmp_path / "orm_train.parquet"), base_path=str(tiny_model_dir), init_weights=None,
                  out_dir=str(out), round_idx=0, seed=0, prompt_version="v1", run_name="demo/orm",
                  logging_dir=str(tmp_path / "tb/orm"))  # fmt: skip
    cfg = TrainConfig(min_steps=3, max_steps=3, per_device_train_batch_size=4, report_to=["tensorboard"])
    train_orm(kwargs, cfg, final_line_steps=2, final_line_batch_size=4)
    m = read_table(out / METRICS_FILE, "train_metrics")
    assert list(zip(m["job"], m["step"], strict=True)) == [
        ("orm_final_lines", 1), ("orm_final_lines", 2), ("orm", 1), ("orm", 2), ("orm", 3)
    ]  # fmt: skip
    assert m["round"].is_null().all(), "the ORM is not a round"
    assert m.filter(pl.col("job") == "orm")["run"].unique().to_list() == ["demo/orm"]
    assert m.filter(pl.col("job") == "orm_final_lines")["run"].unique().to_list() == ["demo/orm/final_lines"]
    # The curriculum stage has 4 examples (the #final rows): an epoch a step.
    assert m.filter(pl.col("job") == "orm_final_lines")["epoch"].to_list() == [1.0, 2.0]
    assert [s for s, _ in scalars(tmp_path / "tb/orm")["train/loss"]] == [1, 2, 3]
    assert [s for s, _ in scalars(tmp_path / "tb/orm/final_lines")["train/loss"]] == [1, 2]
    assert not (tmp_path / "orm/adapter.final_lines").exists()


def test_a_job_rerun_from_scratch_replaces_its_earlier_tensorboard_events(tmp_path):
    """Two attempts write events to one folder (a finished job rerun, then a resume after step 2): TensorBoard
    shows each step once, with the latest attempt's value."""
    for attempt, start in ((1, 0), (2, 0), (3, 2)):
        trackers = Trackers(["tensorboard"], "r/round_1", str(tmp_path / "tb"), {}, start=start)
        for step in range(start + 1, 5):
            trackers.log({"loss": 10 * attempt + step}, step)
        trackers.close()
    assert scalars(tmp_path / "tb")["train/loss"] == [(1, 21.0), (2, 22.0), (3, 33.0), (4, 34.0)]
