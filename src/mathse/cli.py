"""The `mathse` command: import benchmarks, score responses, look at a run's results from the terminal.

The subcommands call the same functions as the pipeline's rules (mathse.benchmarks.import_benchmark,
mathse.scoring), so a score computed here equals the one the evaluate rule writes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import polars as pl


def cmd_summary(args: argparse.Namespace) -> int:
    from mathse.artifacts import read_table
    from mathse.summarize import markdown_table

    path = Path(args.results) / "summary.parquet"
    summary = read_table(path, "summary")
    if args.json:
        print(json.dumps(summary.to_dicts(), indent=2))
    else:
        print(markdown_table(summary), end="")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from mathse.benchmarks import import_benchmark, report_paths

    where = dict(kv.split("=", 1) for kv in args.where)
    table = import_benchmark(
        args.format,
        args.src,
        args.output,
        where=where or None,
        limit=args.limit,
        pool=args.pool or None,
        contamination=args.contamination,
    )
    reports = report_paths(args.output)
    n_bad = sum(1 for _ in reports["quarantine"].open()) if reports["quarantine"].exists() else 0
    print(f"{args.output}: {table.height} problems; {n_bad} quarantined ({reports['quarantine']})")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from mathse.artifacts import read_table, write_table
    from mathse.scoring import breakdown, score_responses

    problems = read_table(args.problems, "problem")
    responses = (
        pl.read_parquet(args.responses) if args.responses.endswith(".parquet") else pl.read_ndjson(args.responses)
    )
    scores, missing = score_responses(problems, responses, args.suite)
    scores = scores.with_columns(
        suite=pl.lit(args.suite),
        stage=pl.lit(args.stage),
        model=pl.lit(args.model),
        backend=pl.lit("external"),
        prompt_version=pl.lit(None, pl.String),
        seed=pl.lit(None, pl.Int64),
    )
    write_table(scores, args.output, "score")
    n, k = scores.height, int(scores["correct"].sum())
    if missing:
        print(f"warning: {missing} of {n} problems have no response and count as wrong", file=sys.stderr)
    print(f"{args.suite}: accuracy {100 * k / max(n, 1):.2f}% ({k}/{n})")
    for row in breakdown(scores, problems, args.suite).iter_rows(named=True):
        print(f"  {row['key']} {row['value']}: {100 * row['accuracy']:.2f}% (n={row['n']})")
    return 0


def main(argv: list[str] | None = None) -> int:
    from mathse.benchmarks import FORMATS
    from mathse.scoring import SCORINGS

    parser = argparse.ArgumentParser(prog="mathse", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("summary", help="the stage-by-stage accuracy table of a results folder")
    p.add_argument("results", nargs="?", default="results", help="results folder (default: results)")
    p.add_argument("--json", action="store_true", help="print rows as JSON")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("import", help="a benchmark as published (local files) -> canonical problem parquet")
    p.add_argument("src", help="the benchmark file, folder or glob as downloaded")
    p.add_argument("--format", required=True, choices=FORMATS, help="the published format of SRC")
    p.add_argument("-o", "--output", required=True, help="problem parquet to write (images go beside it)")
    p.add_argument("--where", action="append", default=[], metavar="KEY=VALUE", help="keep rows whose metadata "
                   "has this value, e.g. 'task=geometry problem solving' (MathVista GPS); repeatable")  # fmt: skip
    p.add_argument("--limit", type=int, help="keep only the first N problems")
    p.add_argument("--pool", action="append", help="training pool problem parquet to check for contamination")
    p.add_argument("--contamination", choices=["report", "exclude"], default="report", help="with --pool")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("score", help="score model responses by a benchmark's official rules")
    p.add_argument("--suite", required=True, choices=SCORINGS, help="whose rules to score by")
    p.add_argument("--problems", required=True, help="problem parquet (from `mathse import` or the pipeline)")
    p.add_argument("--responses", required=True, help="parquet (or JSONL) with columns problem_id and response")
    p.add_argument("-o", "--output", required=True, help="score parquet to write, one row per problem")
    p.add_argument("--stage", default="external", help="stage recorded in the rows (default: external)")
    p.add_argument("--model", default="unknown", help="model name recorded in the rows")
    p.set_defaults(func=cmd_score)

    args = parser.parse_args(argv)
    if args.command in ("import", "score"):
        from mathse.logs import setup_logging

        setup_logging(None)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError, pl.exceptions.PolarsError) as err:
        print(f"mathse {args.command}: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
