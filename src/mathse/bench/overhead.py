"""Pipeline overhead: Snakemake planning a long DAG, and a no-op rerun of a finished run (target < 5 s each).

Both are whole `snakemake` processes timed from outside, as a user meets them (interpreter start and
Snakefile parsing included).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]  # the project folder (Snakefile, config/, profiles/)
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def run_snakemake(workdir: Path, *args: str, env: dict | None = None) -> tuple[float, str]:
    cmd = [*SNAKEMAKE, "--directory", str(workdir), *args]
    if (workdir / "config.yaml").exists():  # else the Snakefile's own config/config.yaml (the demo)
        cmd += ["--configfile", str(workdir / "config.yaml")]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return elapsed, proc.stdout + proc.stderr


def _planned(output: str) -> int:
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "total" and parts[1].isdigit():
            return int(parts[1])
    return 0


def write_long_config(workdir: Path, rounds: int = 10, extra_suites: int = 3) -> None:
    """The demo config with `rounds` rounds and `extra_suites` generic JSONL suites beside the synthetic one."""
    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    cfg["run"]["rounds"] = rounds
    suites = {}
    for s in range(extra_suites):
        path = workdir / f"bench_{s}.jsonl"
        rows = [{"id": f"q{i}", "question": f"What is {i} + {s}?", "answer": str(i + s)} for i in range(5)]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        suites[f"suite_{s}"] = {"format": "jsonl", "path": str(path)}
    cfg["data"]["benchmarks"] = suites
    cfg["eval"]["suites"] = ["synthetic", *suites]
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg))


def bench_overhead(finished: str | None = ".", rounds: int = 10, repeats: int = 3) -> dict:
    """Median seconds of a dry run of a `rounds`-round, 4-suite DAG, and of a no-op rerun of `finished`.

    `finished` is a working folder holding a finished run (the demo's, after `make demo`); None or a folder
    without results/summary.md: that figure is not measured.
    """
    result: dict = {"rounds": rounds, "suites": 4}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_long_config(work, rounds)
        times = []
        for _ in range(repeats):
            t, out = run_snakemake(work, "-n", "--cores", "2")
            times.append(t)
        result["dry_run_jobs"] = _planned(out)
        result["dry_run_s"] = statistics.median(times)
    done = Path(finished) if finished else None
    if done is not None and (done / "results/summary.md").exists():
        times = []
        for _ in range(repeats):
            t, out = run_snakemake(done, "--profile", str(ROOT / "profiles/local"))
            if "Nothing to be done" not in out:
                raise RuntimeError(f"{done} is not a finished run: the rerun had work to do")
            times.append(t)
        result["noop_s"] = statistics.median(times)
    return result


def section(result: dict) -> list[str]:
    """BENCHMARKS.md lines for this figure."""
    lines = [
        "## Pipeline overhead",
        "Whole `snakemake` processes, median of 3 (interpreter start and Snakefile parsing included). Target:",
        "under 5 s each.",
        "",
        f"- Dry run (`-n`) planning a {result['rounds']}-round DAG with {result['suites']} suites "
        f"({result['dry_run_jobs']} jobs): {result['dry_run_s']:.1f} s.",
    ]
    if "noop_s" in result:
        noop = result["noop_s"]
        lines.append(f"- No-op rerun of the finished demo (`snakemake --profile profiles/local`): {noop:.1f} s.")
    else:
        lines.append("- No-op rerun of the finished demo: not measured (run `make demo` first, then the benchmark).")
    return lines + [""]
