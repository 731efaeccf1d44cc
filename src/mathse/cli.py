"""The `mathse` command: import benchmarks, score responses, look at a run's results from the terminal.

  mathse import --format FMT SRC -o OUT.parquet                 a benchmark as published -> problem parquet
  mathse score --suite S --problems P --responses R -o OUT      score responses by a benchmark's rules
  mathse summary results/                                      the stage-by-stage accuracy table
  mathse show results/round_1/judgments.parquet --problem ID   one problem's paths and verdicts
  mathse diff round_0 round_2 [--results results] [--suite S]  which test problems flipped
  mathse curves results/ [--plot curves.png]                   training loss per round, accuracy, throughput

import and score call the same functions as the pipeline's rules (mathse.problems.benchmarks,
mathse.judging.scoring), so a score computed here equals the one the evaluate rule writes. summary, show, diff and
curves take --json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import polars as pl


def cmd_summary(args: argparse.Namespace) -> int:
    from mathse.artifacts import read_table
    from mathse.reporting.summarize import markdown_table

    path = Path(args.results) / "summary.parquet"
    summary = read_table(path, "summary")
    if args.json:
        print(json.dumps(summary.to_dicts(), indent=2, ensure_ascii=False))
    else:
        print(markdown_table(summary), end="")
    return 0


# Artifact kind of a results file, from its name (see mathse.artifacts.SCHEMAS).
KINDS = {
    "judgments": "judgment",
    "rollouts": "rollout",
    "reflections": "reflection",
    "train": "train",
    "remain": "problem",
    "distilled": "distilled",
    "seed": "problem",
    "pool": "problem",
    "summary": "summary",
}
VERDICT_FIELDS = ("status", "answer_correct", "extracted", "error_step", "error_analysis", "improvement_suggestion")


def artifact_kind(path: Path) -> str:
    if path.parent.name in ("scores",):
        return "score"
    if path.parent.name == "bench":
        return "problem"
    if path.stem not in KINDS:
        raise ValueError(f"{path}: not a results artifact (expected one of {', '.join(sorted(KINDS))} or scores/*)")
    return KINDS[path.stem]


def results_root(path: Path) -> Path | None:
    """The results folder a file belongs to: the nearest folder above it that holds data/."""
    for parent in path.resolve().parents:
        if (parent / "data").is_dir():
            return parent
    return None


def find_problem(root: Path | None, problem_id: str) -> dict | None:
    """The problem's row in the run's problem tables (seed, pool, benchmark suites)."""
    if root is None:
        return None
    from mathse.artifacts import read_table

    for table in [
        root / "data/seed.parquet",
        root / "data/pool.parquet",
        *sorted((root / "data/bench").glob("*.parquet")),
    ]:
        if table.exists():
            rows = read_table(table, "problem").filter(pl.col("problem_id") == problem_id)
            if rows.height:
                return rows.row(0, named=True)
    return None


def _indent(text: str | None, prefix: str = "    ") -> str:
    return "\n".join(prefix + line for line in (text or "").splitlines()) or prefix + "(empty)"


def cmd_show(args: argparse.Namespace) -> int:
    from mathse.artifacts import read_table

    path = Path(args.artifact)
    kind = artifact_kind(path)
    rows = read_table(path, kind).filter(pl.col("problem_id") == args.problem)
    if "sample_idx" in rows.columns:
        rows = rows.sort([c for c in ("source_round", "round", "sample_idx") if c in rows.columns])
    if rows.is_empty():
        print(f"mathse show: no rows for problem {args.problem!r} in {path}", file=sys.stderr)
        return 1
    problem = find_problem(results_root(path), args.problem)
    if args.json:
        out = {"artifact": str(path), "kind": kind, "problem": problem, "rows": rows.to_dicts()}
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return 0
    print(f"{args.problem} in {path} ({kind}, {rows.height} row{'s' if rows.height > 1 else ''})")
    if problem:
        print(f"  question: {problem['question']}")
        print(f"  answer:   {problem['answer']}")
        print(f"  images:   {', '.join(problem['images']) or '(none)'}")
    for r in rows.iter_rows(named=True):
        head = [f"{k}={r[k]}" for k in ("round", "source_round", "sample_idx", "origin", "stage") if k in r]
        print("\n- " + " ".join(head))
        if kind == "judgment":
            check = "right" if r["answer_correct"] else "wrong"
            cut = f", check cut short: {r['check']}" if r.get("check") else ""
            print(f"  ORM: {r['status']} (math-verify: answer {check}{cut}, extracted {r['extracted']!r})")
            if r["status"] != "CORRECT":
                print(f"  error step: {r['error_step']}")
                print(f"  analysis:   {r['error_analysis']}")
                print(f"  suggestion: {r['improvement_suggestion']}")
        elif kind == "reflection":
            print(f"  ORM re-check: {r['status']} (accepted: {r['accepted']}), error step given: {r['error_step']}")
            print("  wrong path:")
            print(_indent(r["wrong_response"]))
        elif kind == "score":
            cut = f", check cut short: {r['check']}" if r.get("check") else ""
            print(f"  correct: {r['correct']} (extracted {r['extracted']!r}, answer {r['answer']!r}{cut})")
        elif kind == "problem":
            print("  reference steps:")
            print(_indent("\n".join(r["solution_steps"] or [])))
        if "response" in r:
            print("  path:" if kind != "reflection" else "  rewrite:")
            print(_indent(r["response"]))
    return 0


def stage_name(stage: str) -> str:
    return f"round_{stage}" if stage.isdigit() else stage


def cmd_diff(args: argparse.Namespace) -> int:
    from mathse.artifacts import read_table
    from mathse.reporting.report import TRANSITIONS, flips

    root = Path(args.results)
    before, after = stage_name(args.before), stage_name(args.after)
    scores = {}
    for stage in (before, after):
        files = sorted((root / stage / "scores").glob("*.parquet"))
        if args.suite:
            files = [f for f in files if f.stem == args.suite]
        if not files:
            what = f"suite {args.suite!r} " if args.suite else ""
            raise FileNotFoundError(f"no {what}scores for stage {stage!r} in {root / stage / 'scores'}")
        scores[stage] = pl.concat([read_table(f, "score") for f in files])
    table = flips(scores[before], scores[after])
    out = []
    for suite in sorted(table["suite"].unique().to_list()):
        sub = table.filter(pl.col("suite") == suite)
        changed = sub.filter(pl.col("before") != pl.col("after")).select(
            "problem_id", "transition", "answer", "extracted_before", "extracted_after"
        )
        out.append(
            {
                "suite": suite,
                "problems": sub.height,
                "counts": {t: int((sub["transition"] == t).sum()) for t in TRANSITIONS},
                "flipped": changed.to_dicts(),
            }
        )
    if args.json:
        print(json.dumps({"before": before, "after": after, "suites": out}, indent=2, ensure_ascii=False))
        return 0
    for s in out:
        print(f"{s['suite']}: {before} -> {after}, {s['problems']} problems")
        print("  " + "  ".join(f"{t}: {n}" for t, n in s["counts"].items()))
        for t in ("wrong→correct", "correct→wrong"):
            flipped = [f for f in s["flipped"] if f["transition"] == t]
            print(f"  {t} ({len(flipped)}):")
            for f in flipped:
                print(
                    f"    {f['problem_id']}: answer {f['answer']}, "
                    f"{before} said {f['extracted_before']}, {after} said {f['extracted_after']}"
                )
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from mathse.problems.benchmarks import import_benchmark, report_paths

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
    from mathse.judging import checks
    from mathse.judging.scoring import breakdown, score_responses

    if args.check_timeout <= 0:
        raise ValueError("--check-timeout must be a positive number of seconds")
    checks.configure(timeout_s=args.check_timeout)

    problems = read_table(args.problems, "problem")
    responses = (
        pl.read_parquet(args.responses) if args.responses.endswith(".parquet") else pl.read_ndjson(args.responses)
    )
    extractor = None
    if args.extractor_url:
        from mathse.config import EndpointConfig, ExtractorConfig
        from mathse.judging.extractor import LlmExtractor

        endpoint = EndpointConfig(
            base_url=args.extractor_url,
            model=args.extractor_model,
            max_tokens=32,
            api_key_env=args.extractor_api_key_env,
        )
        extractor = LlmExtractor(ExtractorConfig(backend="openai", openai=endpoint))
    scores, missing = score_responses(problems, responses, args.suite, extractor)
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
    cut = scores.filter(pl.col("check").is_in([checks.TIMEOUT, checks.MEMORY, checks.ERROR]))
    if cut.height:
        print(
            f"warning: {cut.height} of {n} answer checks were cut short by their limit (column `check`: "
            f"{', '.join(sorted(set(cut['check'])))}) and count as wrong; --check-timeout raises the time limit",
            file=sys.stderr,
        )
    print(f"{args.suite}: accuracy {100 * k / max(n, 1):.2f}% ({k}/{n})")
    for row in breakdown(scores, problems, args.suite).iter_rows(named=True):
        print(f"  {row['key']} {row['value']}: {100 * row['accuracy']:.2f}% (n={row['n']})")
    return 0


def cmd_curves(args: argparse.Namespace) -> int:
    from mathse.reporting.curves import curve_table, generation_table, markdown, plot_curves, read_run

    curves, summary, stats = read_run(args.results)
    if curves.is_empty() and summary is None:
        raise FileNotFoundError(f"{args.results}: no round_*/adapter/train_metrics.parquet and no summary.parquet")
    table, generation = curve_table(curves, summary), generation_table(stats)
    if args.plot:
        plot_curves(curves, summary, args.plot)
    if args.json:
        steps = curves.select("round", "step", "global_step", "loss", "learning_rate", "grad_norm").to_dicts()
        out = {"stages": table.to_dicts(), "generation": generation.to_dicts(), "steps": steps}
        print(json.dumps(out, indent=2))
        return 0
    print(markdown(table, summary["suite"].unique().to_list() if summary is not None else []), end="")
    if generation.height:
        print("\nGeneration (tokens and paths per second; cut: share of paths that hit max_new_tokens):")
        print(markdown(generation), end="")
    if args.plot:
        print(f"\nwrote {args.plot}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from mathse.judging.scoring import SCORINGS
    from mathse.problems.benchmarks.formats import FORMATS

    parser = argparse.ArgumentParser(
        prog="mathse", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("summary", help="the stage-by-stage accuracy table of a results folder")
    p.add_argument("results", nargs="?", default="results", help="results folder (default: results)")
    p.add_argument("--json", action="store_true", help="print rows as JSON")
    p.set_defaults(func=cmd_summary)
    p = sub.add_parser("show", help="one problem's rows in an artifact (paths, verdicts), with its image path")
    p.add_argument("artifact", help="a results parquet file, e.g. results/round_1/judgments.parquet")
    p.add_argument("--problem", required=True, help="problem_id")
    p.add_argument("--json", action="store_true", help="print the problem and the rows as JSON")
    p.set_defaults(func=cmd_show)
    p = sub.add_parser("diff", help="which test problems flipped between two stages")
    p.add_argument("before", help="a stage: base, round_0, round_1 ... (or just the round number)")
    p.add_argument("after", help="a later stage")
    p.add_argument("--results", default="results", help="results folder (default: results)")
    p.add_argument("--suite", help="only this benchmark suite (default: all)")
    p.add_argument("--json", action="store_true", help="print counts and flipped problems as JSON")
    p.set_defaults(func=cmd_diff)
    p = sub.add_parser("curves", help="training loss per round with each stage's accuracy and generation speed")
    p.add_argument("results", nargs="?", default="results", help="results folder (default: results)")
    p.add_argument("--plot", metavar="PNG", help="also draw the loss curves and accuracy to this file")
    p.add_argument("--json", action="store_true", help="print the tables and every step's loss as JSON")
    p.set_defaults(func=cmd_curves)
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
    p.add_argument(
        "--extractor-url",
        help="OpenAI-compatible endpoint (e.g. https://api.openai.com/v1) of an LLM that extracts the answer "
        "where the rules find none; API key from $OPENAI_API_KEY for OpenAI's endpoint",
    )
    p.add_argument("--extractor-model", default="gpt-4o-mini", help="the extractor's model name")
    p.add_argument(
        "--extractor-api-key-env",
        metavar="VAR",
        help="environment variable holding the extractor endpoint's API key (sent to any host; default: "
        "$OPENAI_API_KEY, sent only to OpenAI's)",
    )
    p.add_argument(
        "--check-timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="time limit of one response's answer check (config answer_check.timeout_s); a check past it "
        "counts wrong, with `check: timeout` in its row (default: 5)",
    )
    p.set_defaults(func=cmd_score)

    args = parser.parse_args(argv)
    if args.command in ("import", "score"):
        from mathse.logs import setup_logging

        setup_logging(None)
    try:
        return args.func(args)
    except BrokenPipeError:  # e.g. `mathse show ... | head`
        sys.stderr.close()
        return 0
    except (FileNotFoundError, ValueError, pl.exceptions.PolarsError) as err:
        print(f"mathse {args.command}: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
