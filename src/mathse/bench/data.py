"""Data stages at scale: judge (rule ORM), assemble and summarize on 10^4..10^6 synthetic rollout rows.

Each stage runs in a fresh subprocess, so its peak RSS (VmHWM) is its own; seconds are the stage's
own time inside that process (imports excluded). ``python -m mathse.bench.data --sizes 10000 100000``
runs it alone.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from mathse.artifacts import write_table
from mathse.prompts import ANSWER_PREFIX, format_solution

SIZES = (10_000, 100_000, 1_000_000)
STAGES = ("judge", "assemble", "summarize")
TARGET_SECONDS = 60.0  # issue 6: a million rows per stage in under a minute ...
TARGET_MIB = 2048.0  # ... and under 2 GiB
PREAMBLES = ["", "", "Let me read the image carefully.", "I will solve this step by step.", "First, read the values."]


def _steps_answer(kind: str, a: int, b: int, slip: int = 0) -> tuple[list[str], str, int | None]:
    """Reference steps, answer and precision of a problem like mathse.problems.data's (plus a decimal and a fraction
    answer, which take the numeric and the math-verify checks); `slip` puts an arithmetic error in the last step."""
    reads = [f"The left bar is {a}.", f"The right bar is {b}."]
    if kind == "sum":
        return [*reads, f"{a} + {b} = {a + b + slip}."], str(a + b + slip), None
    if kind == "perimeter":
        s = a + b
        return (
            [f"The width is {a}.", f"The height is {b}.", f"{a} + {b} = {s}.", f"2 x {s} = {2 * s + slip}."],
            str(2 * s + slip),
            None,
        )
    if kind == "average":
        avg = f"{(a + b + slip) / 2:g}"
        return [*reads, f"({a} + {b}) / 2 = {avg}."], avg, 1
    frac = f"\\frac{{{a}}}{{{a + b + slip}}}"
    return [*reads, f"{a} / ({a} + {b}) = {a}/{a + b + slip}."], frac, None


KINDS = ("sum", "perimeter", "sum", "average", "sum", "perimeter", "sum", "perimeter", "average", "fraction")


def _problem(i: int, rng: np.random.Generator) -> dict:
    a, b = (int(v) for v in rng.integers(1, 100, size=2))
    kind = KINDS[i % len(KINDS)]
    steps, answer, precision = _steps_answer(kind, a, b)
    return {
        "problem_id": f"syn-{i:06d}",
        "question": f"Synthetic {kind} problem {i}: read the two values and combine them.",
        "images": [f"images/syn-{i:06d}.png"],
        "choices": [],
        "answer": answer,
        "answer_type": "float" if precision else "text" if kind == "fraction" else "integer",
        "precision": precision,
        "source": f"synthetic_{kind}",
        "split": "pool",
        "solution_steps": steps,
        "metadata": json.dumps({"a": a, "b": b, "kind": kind}),
    }


def _answer_forms(p: dict) -> list[str]:
    """Ways a correct path may write the answer: exact, numeric at precision, or symbolic (math-verify)."""
    meta = json.loads(p["metadata"])
    a, b = meta["a"], meta["b"]
    if meta["kind"] == "fraction":
        return [p["answer"], f"{a}/{a + b}", f"$\\frac{{{a}}}{{{a + b}}}$", f"{a / (a + b):.4f}"]
    if meta["kind"] == "average":
        return [p["answer"], f"{(a + b) / 2:.2f}", f"{(a + b) / 2:.1f}"]
    return [p["answer"], f"{p['answer']}.0", f"${p['answer']}$", f"{int(p['answer']):,}"]


def _response(p: dict, outcome: int, value: int, preamble: str) -> str:
    steps = list(p["solution_steps"])
    forms = _answer_forms(p)
    if outcome <= 1:  # correct, in one of its written forms
        text = format_solution(steps, forms[value % len(forms)])
    elif outcome in (2, 3):  # a value misread by a little (the rest follows from it), or a slip at the end
        meta = json.loads(p["metadata"])
        delta = value % 9 + 1
        a, b = meta["a"], meta["b"]
        if outcome == 2:
            a, b = (a + delta, b) if value % 2 else (a, b + delta)
        steps, answer, _ = _steps_answer(meta["kind"], a, b, slip=delta if outcome == 3 else 0)
        text = format_solution(steps, answer)
    elif outcome == 4:  # truncated at max_new_tokens: no final answer
        text = "\n".join(f"Step {i}: {s}" for i, s in enumerate(steps[: value % len(steps)], start=1))
    elif outcome == 5:  # a \boxed answer instead of the answer sentence
        text = "\n".join(f"Step {i}: {s}" for i, s in enumerate(steps, start=1)) + f"\nSo \\boxed{{{forms[0]}}}"
    else:
        text = ""
    if outcome == 6 and value % 2:  # two answer sentences, the last counts
        text = format_solution(steps, str(value)) + f"\n{ANSWER_PREFIX} {forms[0]}."
    return f"{preamble}\n{text}" if preamble and text else text


def make_data(rows: int, out_dir: str | Path, seed: int = 0) -> dict[str, str]:
    """Write synthetic problems, rollouts (`rows`), a previous train set and score tables (`rows` in all)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, rows])
    n_problems = int(min(5000, max(200, rows // 200)))
    problems = [_problem(i, rng) for i in range(n_problems)]
    pid = rng.integers(n_problems, size=rows)
    # outcomes: 0-1 correct, 2 misread, 3 slip, 4 truncated, 5 boxed, 6 two answer lines / empty
    outcome = rng.choice(7, size=rows, p=[0.25, 0.2, 0.3, 0.1, 0.08, 0.05, 0.02])
    value = rng.integers(1, 200, size=rows)
    pre = rng.integers(len(PREAMBLES), size=rows)
    cache: dict[tuple, str] = {}
    responses = []
    for key in zip(pid.tolist(), outcome.tolist(), value.tolist(), pre.tolist(), strict=True):
        text = cache.get(key)
        if text is None:
            text = cache[key] = _response(problems[key[0]], key[1], key[2], PREAMBLES[key[3]])
        responses.append(text)
    del cache
    problem_df = pl.DataFrame(problems, schema_overrides={"precision": pl.Int64, "choices": pl.List(pl.String)})
    ids = problem_df["problem_id"]
    sample_idx = pl.int_range(pl.len()).over("problem_id")
    rollouts = pl.DataFrame({"problem_id": ids.gather(pid), "response": responses}).with_columns(
        sample_idx=sample_idx,
        num_tokens=pl.col("response").str.len_bytes() // 4,
        finished=pl.col("response").str.contains(ANSWER_PREFIX, literal=True),
        temperature=pl.lit(1.0),
        top_p=pl.lit(1.0),
        round=pl.lit(1),
        model=pl.lit("synthetic"),
        backend=pl.lit("hf"),
        prompt_version=pl.lit("v1"),
        seed=pl.lit(seed),
    )
    del responses
    paths = {k: str(out / f"{k}.parquet") for k in ("problems", "rollouts", "prev_train")}
    write_table(problem_df, paths["problems"], "problem")
    write_table(rollouts, paths["rollouts"], "rollout")
    seed_part = problem_df.head(n_problems // 10)
    prev_train = seed_part.select(
        "problem_id",
        "question",
        "images",
        response=pl.col("solution_steps").list.join("\n"),
        origin=pl.lit("distill"),
        round_added=pl.lit(0),
        sample_idx=pl.lit(0),
        model=pl.lit("teacher"),
        backend=pl.lit("programmatic"),
        prompt_version=pl.lit("v1"),
    )
    write_table(prev_train, paths["prev_train"], "train")
    # Score tables: 2 suites x 4 stages, `rows` in all (the summarize rule reads every one).
    correct = rng.random(rows) < 0.5
    score = rollouts.select(
        "problem_id",
        "response",
        source=pl.lit("synthetic"),
        extracted=pl.lit("8"),
        rule=pl.lit("answer_prefix"),
        answer=pl.lit("8"),
        correct=pl.Series(correct),
        matched_by=pl.when(pl.Series(correct)).then(pl.lit("exact")),
        scoring=pl.lit("mathse"),
        extractor=pl.lit(None, pl.String),
        model=pl.lit("synthetic"),
        backend=pl.lit("hf"),
        prompt_version=pl.lit("v1"),
        seed=pl.lit(seed),
    )
    del rollouts
    part = -(-rows // 8)
    for j, (suite, stage) in enumerate(
        (s, t) for s in ("mathvista", "gps") for t in ("base", "round_0", "round_1", "round_2")
    ):
        key = f"score_{j}"
        paths[key] = str(out / f"scores_{suite}_{stage}.parquet")
        chunk = score.slice(j * part, part).with_columns(suite=pl.lit(suite), stage=pl.lit(stage))
        write_table(chunk, paths[key], "score")
    return paths


def run_stage(stage: str, data: dict[str, str], out_dir: str) -> dict:
    """Run one stage in this process (the child side); returns its own seconds."""
    from mathse.config import AssembleConfig

    out = Path(out_dir)
    t0 = time.perf_counter()
    if stage == "judge":
        from mathse.judging.orm import run_judge

        run_judge(
            data["rollouts"], data["problems"], str(out / "judgments.parquet"), stats_path=str(out / "stats.parquet")
        )
    elif stage == "assemble":
        from mathse.training.assemble import assemble_round

        assemble_round(
            data["prev_train"],
            data["problems"],
            str(out / "judgments.parquet"),
            [],
            [data["problems"]],
            str(out / "train.parquet"),
            str(out / "remain.parquet"),
            AssembleConfig(),
            round_idx=1,
        )
    elif stage == "summarize":
        from mathse.reporting.summarize import summarize

        scores = [v for k, v in sorted(data.items()) if k.startswith("score_")]
        train = {"round_0": data["prev_train"], "round_1": str(out / "train.parquet")}
        summarize(scores, train, str(out / "summary.parquet"), str(out / "summary.md"))
    elif stage in ("judge_per_row", "judge_column"):  # the verdicts alone, without reading or writing
        from mathse.artifacts import read_table
        from mathse.judging.orm.rule import judge_table, judge_table_per_row

        paths, problems = read_table(data["rollouts"], "rollout"), read_table(data["problems"], "problem")
        t0 = time.perf_counter()
        (judge_table_per_row if stage == "judge_per_row" else judge_table)(paths, problems)
    else:
        raise ValueError(f"unknown stage {stage!r}")
    return {"seconds": time.perf_counter() - t0, "peak_mib": _own_peak_mib()}


def _own_peak_mib() -> float:
    """This process's peak RSS. VmHWM restarts at exec; ru_maxrss would carry over the forking parent's."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _in_child(stage: str, data: dict[str, str], out_dir: str) -> dict:
    """Run `stage` in a fresh interpreter; its own seconds, the process wall time and its peak RSS (MiB)."""
    cmd = [sys.executable, "-m", "mathse.bench.data", "--child", stage, "--data", json.dumps(data), "--dir", out_dir]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=os.environ.copy())
    stdout = proc.stdout.read()
    _, status = os.waitpid(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{stage} stage failed with exit code {proc.returncode}")
    own = json.loads(stdout.decode().strip().splitlines()[-1])
    return {"seconds": own["seconds"], "process_seconds": wall, "peak_mib": own["peak_mib"]}


def bench_data_stages(sizes: tuple[int, ...] = SIZES, compare_rows: int | None = 10_000, repeats: int = 1) -> dict:
    """Wall time and peak memory of judge, assemble and summarize at each size, each in a fresh process;
    and, at `compare_rows`, the per-row judge against the column-wise one (alternated, medians)."""
    runs = []
    compare = None
    with tempfile.TemporaryDirectory(prefix="mathse-bench-data-") as tmp:
        for rows in sorted(sizes):
            work = Path(tmp) / str(rows)
            data = make_data(rows, work)
            for stage in STAGES:
                runs.append({"rows": rows, "stage": stage, **_in_child(stage, data, str(work))})
            if rows == compare_rows:
                per_row, column = [], []
                for _ in range(repeats):
                    per_row.append(_in_child("judge_per_row", data, str(work))["seconds"])
                    column.append(_in_child("judge_column", data, str(work))["seconds"])
                compare = {
                    "rows": rows,
                    "per_row_seconds": statistics.median(per_row),
                    "column_seconds": statistics.median(column),
                }
                compare["ratio"] = compare["per_row_seconds"] / compare["column_seconds"]
            for path in work.glob("*.parquet"):
                path.unlink()
    largest = max(sizes)
    growth = {}
    below = sorted(s for s in sizes if s < largest)
    if below:
        prev = below[-1]
        for stage in STAGES:
            t = {r["rows"]: r["seconds"] for r in runs if r["stage"] == stage}
            growth[stage] = {"from_rows": prev, "to_rows": largest, "factor": t[largest] / t[prev]}
    at_largest = [r for r in runs if r["rows"] == largest]
    bounds = {
        "rows": largest,
        "target_seconds": TARGET_SECONDS,
        "target_mib": TARGET_MIB,
        "max_seconds": max(r["seconds"] for r in at_largest),
        "max_peak_mib": max(r["peak_mib"] for r in at_largest),
    }
    bounds["within"] = bounds["max_seconds"] < TARGET_SECONDS and bounds["max_peak_mib"] < TARGET_MIB
    return {"runs": runs, "growth": growth, "bounds": bounds, "compare": compare}


def section(result: dict) -> list[str]:
    """BENCHMARKS.md lines for this figure."""
    b = result["bounds"]
    lines = [
        "## Data stages (judge, assemble, summarize) at scale",
        "Synthetic rollouts (numbered steps and a final answer line; correct, misread, slipped, truncated, boxed",
        "and empty paths) and as many score rows; each stage in a fresh process. Seconds are the stage's own",
        "time (imports excluded); peak MiB is the process's maximum RSS.",
        "",
        "| rows | stage | seconds | process seconds | peak MiB |",
        "|---:|---|---:|---:|---:|",
    ]
    for r in result["runs"]:
        lines.append(
            f"| {r['rows']:,} | {r['stage']} | {r['seconds']:.2f} | {r['process_seconds']:.2f} | {r['peak_mib']:.0f} |"
        )
    lines.append("")
    for stage, g in result["growth"].items():
        lines.append(f"- {stage}: time at {g['to_rows']:,} / time at {g['from_rows']:,} rows = {g['factor']:.1f}x")
    verdict = "within" if b["within"] else "NOT within"
    lines.append(
        f"- at {b['rows']:,} rows: slowest stage {b['max_seconds']:.1f} s, largest peak {b['max_peak_mib']:.0f} MiB: "
        f"{verdict} the target of {b['target_seconds']:.0f} s and {b['target_mib']:.0f} MiB per stage."
    )
    c = result["compare"]
    if c:
        lines.append(
            f"- judge at {c['rows']:,} rows: per-row {c['per_row_seconds']:.2f} s vs column-wise "
            f"{c['column_seconds']:.2f} s: {c['ratio']:.1f}x faster."
        )
    return lines + [""]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mathse.bench.data")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--compare-rows", type=int, default=10_000)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(run_stage(args.child, json.loads(args.data), args.dir)))
        return
    print("\n".join(section(bench_data_stages(tuple(args.sizes), args.compare_rows))))


if __name__ == "__main__":
    main()
