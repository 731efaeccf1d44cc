"""Per-step training metrics: a parquet artifact beside the weights, and the trackers of `train.report_to`.

A training job keeps one row per optimiser step (schema `train_metrics` in mathse.artifacts). While it runs,
the rows so far live in its checkpoint folder (`OUT.ckpt/train_metrics.parquet`), rewritten atomically every
`train.metrics_flush_steps` steps and before every checkpoint; at the end they are written into the output
folder beside the weights. A job killed and rerun resumes from its checkpoint at step s: it keeps the rows up
to s and drops the later ones (the steps it will redo), so the final table holds steps 1..N exactly once.
Because the rows are flushed before each checkpoint, the rows up to the checkpoint are always on disk.

Under DDP/FSDP process 0 keeps the rows and talks to the trackers; the step's loss, tokens and positions are
summed over the processes first (`mathse.training.train`), so a row is the whole step's.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import polars as pl

from mathse.artifacts import read_table, write_table
from mathse.faults import failpoint

log = logging.getLogger(__name__)

METRICS_FILE = "train_metrics.parquet"
# The columns trackers get as scalars (under train/<name>), one point per optimiser step.
SCALARS = (
    "loss",
    "learning_rate",
    "grad_norm",
    "epoch",
    "tokens_per_second",
    "examples_per_second",
    "padding_share",
)


class Trackers:
    """The experiment trackers of `train.report_to`, each sent every step's scalars, on process 0 only.

    `start` is the step a resumed job continues after (0: a fresh start): TensorBoard drops the events earlier
    attempts wrote past it (purge_step), a killed one's or those of a job now rerun from scratch, so its
    curves hold each step once, as the parquet does.
    """

    def __init__(self, names: list[str], run_name: str, logging_dir: str, config: dict, start: int = 0):
        self.names, self.run_name, self._open = list(names), run_name, {}
        for name in self.names:
            self._open[name] = getattr(self, f"_open_{name}")(logging_dir, config, start)
        if self.names:
            log.info("reporting training metrics to %s as run %r", ", ".join(self.names), run_name)

    def _open_tensorboard(self, logging_dir: str, config: dict, start: int):
        from torch.utils.tensorboard import SummaryWriter

        Path(logging_dir).mkdir(parents=True, exist_ok=True)
        writer = SummaryWriter(log_dir=logging_dir, purge_step=start + 1)
        if not start:
            writer.add_text("run", self.run_name, 0)
        return writer

    def _open_wandb(self, logging_dir: str, config: dict, start: int):
        import wandb

        Path(logging_dir).mkdir(parents=True, exist_ok=True)
        return wandb.init(name=self.run_name, config=config, dir=logging_dir)

    def _open_mlflow(self, logging_dir: str, config: dict, start: int):
        import mlflow

        run = mlflow.start_run(run_name=self.run_name)
        mlflow.log_params({k: v for k, v in _flatten(config).items() if v is not None})
        return run

    def _open_trackio(self, logging_dir: str, config: dict, start: int):
        import os

        import trackio

        trackio.init(project=os.environ.get("TRACKIO_PROJECT", "mathse"), name=self.run_name, config=config)
        return trackio

    def log(self, scalars: dict[str, float], step: int) -> None:
        clean = {k: v for k, v in scalars.items() if v is not None and math.isfinite(v)}
        for name, handle in self._open.items():
            if name == "tensorboard":
                for key, value in clean.items():
                    handle.add_scalar(f"train/{key}", value, step)
            elif name == "wandb":
                handle.log({f"train/{k}": v for k, v in clean.items()}, step=step)
            elif name == "mlflow":
                import mlflow

                mlflow.log_metrics({f"train/{k}": v for k, v in clean.items()}, step=step)
            elif name == "trackio":  # the module: trackio.log / trackio.finish act on the run init started
                handle.log({f"train/{k}": v for k, v in clean.items()}, step=step)

    def flush(self) -> None:
        if "tensorboard" in self._open:
            self._open["tensorboard"].flush()

    def close(self) -> None:
        for name, handle in self._open.items():
            if name == "tensorboard":
                handle.close()
            elif name in ("wandb", "trackio"):
                handle.finish()
            elif name == "mlflow":
                import mlflow

                mlflow.end_run()
        self._open = {}


def _flatten(config: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out |= _flatten(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value if isinstance(value, int | float | str | bool) else str(value)
    return out


def kept_rows(path: Path, start: int) -> pl.DataFrame:
    """The rows of an earlier attempt's metrics that a job resuming after step `start` keeps (steps 1..start).

    No file, or one that does not read as the artifact (a crash mid-rename cannot leave one, a hand edit can),
    gives no rows; a gap below `start` is reported, since those steps are not trained again.
    """
    if not path.exists():
        rows = None
    else:
        try:
            rows = read_table(path, "train_metrics")
        except (OSError, ValueError, pl.exceptions.PolarsError) as err:
            log.warning("ignoring the metrics of the earlier attempt in %s: %s", path, err)
            rows = None
    if rows is None:
        rows = pl.DataFrame(schema=read_schema())
    kept = rows.filter(pl.col("step") <= start).unique("step", keep="last").sort("step")
    if kept.height != start:
        log.warning(
            "resuming after step %d, but the earlier attempt's metrics hold %d of those steps; the others stay "
            "missing from %s",
            start,
            kept.height,
            METRICS_FILE,
        )
    if rows.height > kept.height:
        dropped = rows.height - kept.height
        log.info("dropped the metrics of %d steps past the checkpoint (they are trained again)", dropped)
    return kept


def read_schema() -> dict:
    from mathse.artifacts import SCHEMAS

    return SCHEMAS["train_metrics"]


class StepMetrics:
    """Process 0's record of a training job: one row per optimiser step, flushed to `live_path` as it goes,
    each row also sent to the trackers."""

    def __init__(self, live_path: Path, identity: dict, start: int, flush_steps: int, trackers: Trackers):
        self.live_path, self.identity, self.trackers = Path(live_path), identity, trackers
        self.flush_steps = flush_steps
        self.rows = kept_rows(self.live_path, start).to_dicts()
        # The wall clock continues from the last kept row: time lost to the kill is not counted.
        self.wall_offset = self.rows[-1]["wall_seconds"] if self.rows else 0.0
        self._pending = 0

    def step(
        self, step: int, *, loss: float, lr: float, grad_norm: float, tokens: int, positions: int, examples: int,
        epoch: float, seconds: float, wall: float,
    ) -> None:  # fmt: skip
        """Record optimiser step `step` (1-based): its totals over all processes and its wall-clock time."""
        self.record(
            step=step, epoch=epoch, loss=loss, learning_rate=lr, grad_norm=grad_norm, tokens=tokens,
            examples=examples, padding_share=1 - tokens / positions if positions else 0.0, step_seconds=seconds,
            tokens_per_second=tokens / seconds if seconds > 0 else None,
            examples_per_second=examples / seconds if seconds > 0 else None, wall_seconds=wall,
        )  # fmt: skip

    def record(self, **row) -> None:
        row = {**self.identity, **row, "wall_seconds": self.wall_offset + row["wall_seconds"]}
        self.rows.append(row)
        self.trackers.log({k: row[k] for k in SCALARS}, row["step"])
        self._pending += 1
        if row["step"] % self.flush_steps == 0:
            self.flush()

    def table(self) -> pl.DataFrame:
        return pl.DataFrame(self.rows, schema=read_schema()) if self.rows else pl.DataFrame(schema=read_schema())

    def flush(self) -> None:
        """Write the rows so far (atomically: a reader sees the old file or the new one, never half of one)."""
        if not self._pending:
            return
        write_table(self.table(), self.live_path, "train_metrics")
        self.trackers.flush()
        self._pending = 0
        failpoint("train_metrics")

    def finish(self, folder: Path) -> pl.DataFrame:
        """The job's table, written into its output folder (`folder/train_metrics.parquet`)."""
        table = write_table(self.table(), Path(folder) / METRICS_FILE, "train_metrics")
        self.trackers.close()
        return table


def watch_settings(run: dict, train: dict, job: str) -> tuple[dict, dict]:
    """What a train script adds for watching `job`, from the run's config sections `run` and `train` (or
    orm.train): the monitoring settings (config.MONITORING, left out of the rule's params so that they rerun
    nothing), and train()'s run_name, job and logging_dir ({results_dir}/tensorboard/{job})."""
    from mathse.config import MONITORING

    name = run.get("name") or run["results_dir"]
    names = {"run_name": f"{name}/{job}", "job": job, "logging_dir": f"{run['results_dir']}/tensorboard/{job}"}
    return {k: train[k] for k in MONITORING if k in train}, names


def open_metrics(
    folder: Path, report_to: list[str], flush_steps: int, config: dict, *, start: int, run_name: str, job: str,
    round_idx: int | None, processes: int, logging_dir: str,
) -> StepMetrics:  # fmt: skip
    """Process 0's metrics of a training job resuming after step `start` (0: a fresh start), kept in `folder`
    (the job's checkpoint folder) while it runs."""
    trackers = Trackers(report_to, run_name, logging_dir, config, start)
    identity = {"run": run_name, "job": job, "round": round_idx, "processes": processes}
    return StepMetrics(Path(folder) / METRICS_FILE, identity, start, flush_steps, trackers)
