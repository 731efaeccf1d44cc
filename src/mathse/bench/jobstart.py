"""Job starts: a whole run from nothing with warm job starts (mathse.jobserver) vs each job in its own process.

Both are whole `snakemake` runs of one config in fresh folders, alternated, timed from outside: the wall clock
and the CPU of every process the run starts (its jobs, their forks and the server, all waited for). The
artifacts of the two must be the same (artifacts.same_artifact: byte for byte, or equal but for wall-clock
columns), or the figure is not written.
"""

from __future__ import annotations

import os
import resource
import statistics
import tempfile
from pathlib import Path

import yaml

from mathse.artifacts import same_artifact
from mathse.bench.overhead import ROOT, run_snakemake
from mathse.jobserver import ENV

WAYS = {"warm": None, "cold": "off"}  # MATHSE_JOB_SERVER for each way (None: the Snakefile starts the server)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(workdir: Path, server: str | None, cores: int, targets: list[str]) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds and finished jobs of a whole run in `workdir`."""
    env = {k: v for k, v in os.environ.items() if k != ENV}
    if server:
        env[ENV] = server
    cpu0 = _children_cpu()
    wall, out = run_snakemake(workdir, "--profile", str(ROOT / "profiles/local"), "--cores", str(cores), *targets,
                              env=env)  # fmt: skip
    return wall, _children_cpu() - cpu0, out.count("Finished job")


def bench_jobstart(
    config: dict | None = None, pairs: int = 1, cores: int = 2, targets: list[str] | None = None
) -> dict:
    """Median wall and CPU seconds of whole runs of `config` (default: the demo's, config/config.yaml) each
    way, `pairs` alternated pairs, up to `targets` (default: rule all); raises if the two ways' artifacts
    differ."""
    cfg = config or yaml.safe_load((ROOT / "config/config.yaml").read_text())
    times: dict[str, list[tuple[float, float]]] = {way: [] for way in WAYS}
    jobs = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(pairs):
            folders = {}
            for way, server in WAYS.items() if i % 2 == 0 else reversed(WAYS.items()):
                folders[way] = work = Path(tmp) / f"{way}_{i}"
                work.mkdir()
                (work / "config.yaml").write_text(yaml.safe_dump(cfg))
                wall, cpu, jobs = _run(work, server, cores, targets or [])
                times[way].append((wall, cpu))
            warm, cold = folders["warm"], folders["cold"]
            made = sorted(p.relative_to(warm) for p in warm.glob("results/**/*.parquet"))
            differing = [str(p) for p in made if not same_artifact(warm / p, cold / p)]
            if not made or differing:
                raise RuntimeError(f"warm and cold runs differ: {differing or 'no artifacts'}")
    result: dict = {"jobs": jobs, "cores": cores, "pairs": pairs, "artifacts": len(made)}
    for way in WAYS:
        result[f"{way}_wall_s"] = statistics.median(w for w, _ in times[way])
        result[f"{way}_cpu_s"] = statistics.median(c for _, c in times[way])
    result["wall_ratio"] = result["cold_wall_s"] / result["warm_wall_s"]
    result["cpu_ratio"] = result["cold_cpu_s"] / result["warm_cpu_s"]
    return result


def section(result: dict) -> list[str]:
    """BENCHMARKS.md lines for this figure."""
    return [
        "## Job starts",
        f"The demo's whole run from nothing ({result['jobs']} jobs, `--cores {result['cores']}`), with each job "
        "started warm in a fork of the job server (`src/mathse/jobserver.py`, the default for local runs) and "
        "with each job in its own process (`MATHSE_JOB_SERVER=off`), alternated, median of "
        f"{result['pairs']} pair(s); the {result['artifacts']} parquet artifacts are the same either way.",
        "",
        "| job start | wall s | CPU s (all processes) |",
        "|---|---|---|",
        f"| own process | {result['cold_wall_s']:.1f} | {result['cold_cpu_s']:.1f} |",
        f"| warm fork | {result['warm_wall_s']:.1f} | {result['warm_cpu_s']:.1f} |",
        f"| ratio | {result['wall_ratio']:.2f}x | {result['cpu_ratio']:.2f}x |",
        "",
    ]
