"""rollout.parallel_jobs: one round's rollout split over several jobs (several GPUs, or SLURM jobs at once)."""

import shutil

import polars as pl
import pytest
from test_workflow import planned_jobs, snakemake, write_config

from mathse.artifacts import read_table


@pytest.mark.slow
def test_dry_run_plans_the_parts_of_every_round(tmp_path):
    write_config(tmp_path, rollout__parallel_jobs=3)
    jobs = planned_jobs(snakemake(tmp_path, "-n", "--cores", "2"))
    assert jobs["rollout_part"] == 3 * 2 and jobs["join_rollouts"] == 2 and "rollout" not in jobs


@pytest.mark.slow
def test_split_rollout_equals_one_job(tiny_run, tmp_path):
    """Three jobs taking every third shard give the same rollouts as one job, row for row: round 1's rollout of
    the session's tiny run (one job, shards of 4) made again by three parts in a copy of that run."""
    target = "results/round_1/rollouts.parquet"
    work = tmp_path / "jobs3"
    shutil.copytree(tiny_run, work, symlinks=True)
    write_config(work, rollout__parallel_jobs=3)
    for name in ("rollouts.parquet", "rollout_stats.parquet"):
        (work / "results/round_1" / name).unlink()
    assert planned_jobs(snakemake(work, "--cores", "2", "-n", target)) == {"rollout_part": 3, "join_rollouts": 1}
    snakemake(work, "--cores", "2", target)
    assert not list((work / "results/round_1").glob("*.part*"))  # temporary parts are removed
    runs, stats = {}, {}
    for n, run in ((1, tiny_run), (3, work)):
        runs[n] = read_table(run / target, "rollout")
        stats[n] = read_table(run / "results/round_1/rollout_stats.parquet", "generation_stats")
    assert runs[1]["problem_id"].n_unique() > 2 * 4  # at least three shards of 4: one for each part
    assert runs[3].equals(runs[1])
    # The parts' generation stats add up to the one job's (the rates are per part, so only the counts match).
    counts = ["problems", "paths", "tokens", "cut", "cut_share", "generated_paths", "generated_tokens"]
    assert stats[3].select(counts).equals(stats[1].select(counts))
    assert stats[1]["paths"].item() == runs[1].height and stats[3]["tokens_per_second"].item() > 0
    assert runs[3].select(pl.struct("problem_id", "sample_idx").is_duplicated().any()).item() is False
