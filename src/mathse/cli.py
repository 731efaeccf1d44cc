"""The `mathse` command: look at a run's results from the terminal."""

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mathse", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("summary", help="the stage-by-stage accuracy table of a results folder")
    p.add_argument("results", nargs="?", default="results", help="results folder (default: results)")
    p.add_argument("--json", action="store_true", help="print rows as JSON")
    p.set_defaults(func=cmd_summary)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError, pl.exceptions.PolarsError) as err:
        print(f"mathse {args.command}: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
