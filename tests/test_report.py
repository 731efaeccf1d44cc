"""The report (plots, gallery, Snakemake's HTML report in a real browser), progress logging and the CLI."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from chromium import Browser, find_chromium
from test_workflow import ROOT, snakemake

from mathse.artifacts import SCHEMAS, read_table
from mathse.cli import main as mathse
from mathse.logs import Progress
from mathse.reporting.report import (
    TRANSITIONS,
    gallery_examples,
    orm_agreement,
    pass_at_k,
    stage_table_rst,
    transition_counts,
)

ARTIFACTS = ROOT / "tests/artifacts"  # screenshots, git-ignored
PROFILE = str(ROOT / "profiles/local")
FIGURES = ["accuracy", "transitions", "training", "pool", "pass_at_k", "orm", "runtimes", "curves", "generation"]

# ---- the tables behind the plots, on literal inputs ---------------------------------------------


def scores(stage: str, correct: list[bool]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "suite": "s",
            "stage": stage,
            "problem_id": [f"t{i}" for i in range(len(correct))],
            "correct": correct,
            "extracted": ["1"] * len(correct),
            "answer": ["1"] * len(correct),
        }
    )


def test_transition_counts_follow_each_problem_between_consecutive_stages():
    table = pl.concat(
        [
            scores("round_1", [True, True, False, False]),
            scores("base", [False, False, False, True]),
            scores("round_0", [True, False, False, True]),
        ]
    )
    counts = transition_counts(table)
    assert counts["step"].to_list() == ["base→round_0", "round_0→round_1"]
    assert counts.select(TRANSITIONS).rows() == [(1, 1, 0, 2), (1, 1, 1, 1)]


def judgments(rows: list[tuple[int, str, int, str, bool]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=["round", "problem_id", "sample_idx", "status", "answer_correct"], orient="row")


def test_pass_at_k_counts_a_problem_solved_by_any_of_its_k_paths():
    table = judgments(
        [
            (1, "a", 0, "CORRECT", True),
            (1, "a", 1, "WRONG", False),
            (1, "b", 0, "WRONG", False),
            (1, "b", 1, "WRONG", False),
            (2, "b", 0, "CORRECT", True),
            (2, "b", 1, "CORRECT", True),
        ]
    )
    out = pass_at_k(table)
    assert out["round"].to_list() == [1, 2]
    assert out["k"].to_list() == [2, 2]
    assert out["pass_at_1"].to_list() == [0.25, 1.0]
    assert out["pass_at_k"].to_list() == [0.5, 1.0]


def test_orm_agreement_compares_the_verdict_with_the_answer_check():
    table = judgments(
        [
            (1, "a", 0, "CORRECT", True),
            (1, "a", 1, "WRONG", True),  # right answer, wrong step
            (1, "b", 0, "WRONG", False),
            (1, "b", 1, "CORRECT", False),
        ]
    )
    row = orm_agreement(table).row(0, named=True)
    assert (row["both_correct"], row["both_wrong"]) == (1, 1)
    assert (row["orm_wrong_answer_correct"], row["orm_correct_answer_wrong"]) == (1, 1)
    assert row["agreement"] == 0.5


def test_stage_table_has_one_row_per_stage_in_loop_order():
    summary = pl.DataFrame(
        {
            "suite": ["s", "s", "s"],
            "stage": ["round_1", "base", "round_0"],
            "accuracy": [0.5, 0.0, 0.25],
            "n": [4, 4, 4],
            "n_correct": [2, 0, 1],
            "train_size": [9, 0, 3],
        }
    )
    rst = stage_table_rst(summary)
    rows = [line.split("- ", 1)[1] for line in rst.splitlines() if line.startswith("   * - ")]
    assert rows == ["stage", "base", "round_0", "round_1"]
    assert "50.0 (2/4)" in rst and "25.0 (1/4)" in rst


def table(kind: str, **columns) -> pl.DataFrame:
    """An artifact table with the given columns and nulls in the others."""
    df = pl.DataFrame(columns)
    schema = SCHEMAS[kind]
    missing = [pl.lit(None, dtype).alias(c) for c, dtype in schema.items() if c not in df.columns]
    return df.with_columns(missing).select(list(schema)).cast(schema)


def test_gallery_shows_a_fixed_path_an_unfixed_one_and_a_correct_one_first():
    j = table(
        "judgment",
        problem_id=["p1", "p2", "p3", "p4"],
        sample_idx=[0, 0, 0, 0],
        response=["x"] * 4,
        answer_correct=[False, False, True, False],
        status=["WRONG", "WRONG", "CORRECT", "WRONG"],
        error_step=[1, 2, None, 1],
        round=[1] * 4,
    )
    refl = table(
        "reflection",
        problem_id=["p2", "p4"],
        sample_idx=[0, 0],
        source_round=[1, 1],
        response=["fixed", "no"],
        status=["CORRECT", "WRONG"],
        accepted=[True, False],
    )
    problems = table("problem", problem_id=["p1", "p2", "p3", "p4"], question=["q"] * 4, answer=["1"] * 4)
    ex = gallery_examples(j, refl, problems, n=3)
    assert ex["problem_id"].to_list() == ["p2", "p1", "p3"]
    assert ex["reflection"].to_list() == ["fixed", None, None]


def test_progress_logs_one_line_per_tenth_with_a_rate(caplog):
    logger = logging.getLogger("mathse.test_progress")
    with caplog.at_level(logging.INFO, logger="mathse.test_progress"):
        bar = Progress(95, "judge", "paths", logger)
        for _ in range(95):
            bar.update()
        bar.close()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 10
    assert lines[-1].startswith("judge: 95/95 paths (100%)") and "paths/s" in lines[-1]


# ---- a real tiny run, its report and the CLI on its artifacts ------------------------------------


@pytest.fixture(scope="module")
def reported_run(tiny_run, tmp_path_factory) -> Path:
    """A copy of the session's tiny run (conftest.py) with its HTML report."""
    workdir = tmp_path_factory.mktemp("report") / "run"
    shutil.copytree(tiny_run, workdir, symlinks=True)
    snakemake(workdir, "--profile", PROFILE, "--report", str(workdir / "results/report.html"))
    return workdir


@pytest.mark.slow
def test_plots_and_galleries_come_from_the_run(reported_run):
    rep = reported_run / "results/report"
    for name in FIGURES:
        png = (rep / f"{name}.png").read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 5000, name
    table = (rep / "summary.rst").read_text()
    for stage in ["base", "round_0", "round_1", "round_2"]:
        assert f"* - {stage}\n" in table
    judged = read_table(reported_run / "results/round_1/judgments.parquet", "judgment")
    for r in (1, 2):
        page = (rep / f"gallery/round_{r}.html").read_text()
        assert page.count('class="card"') >= 1
        assert "data:image/png;base64," in page
    page = (rep / "gallery/round_1.html").read_text()
    assert any(f'data-problem="{pid}"' in page for pid in judged["problem_id"])
    assert (reported_run / "logs/benchmarks/plots.tsv").exists()


@pytest.mark.slow
def test_report_is_one_self_contained_file(reported_run):
    html = (reported_run / "results/report.html").read_text()
    for name in FIGURES:
        assert f"data:image/png;charset=utf8;filename={name}.png;base64," in html, name
    for r in (1, 2):  # the galleries, embedded as pages
        assert f"data:text/html;charset=utf8;filename=round_{r}.html;base64," in html
    assert "<script src=" not in html and 'rel="stylesheet" href="http' not in html


BROWSER_REASON = "Debian's chromium is not installed (apt-get install chromium); CI installs it and runs this test"


@pytest.mark.slow
@pytest.mark.skipif(find_chromium() is None and os.environ.get("CI") != "true", reason=BROWSER_REASON)
def test_report_renders_table_plots_and_gallery_in_headless_chromium(reported_run):
    binary = find_chromium()
    assert binary, "CI=true but no chromium on PATH: .ci/run should have installed it"
    summary = read_table(reported_run / "results/summary.parquet", "summary")
    costs = list((reported_run / "results").rglob("*_cost.parquet"))
    n_cost_rows = sum(read_table(p, "api_cost").height for p in costs)
    assert n_cost_rows >= 5  # distill, and judge and reflect in rounds 1 and 2
    shots = ARTIFACTS / "report"
    with Browser(binary, timeout=180) as b:  # a loaded 2-core machine can take minutes
        b.open((reported_run / "results/report.html").as_uri())
        b.wait_for("document.body.innerText.includes('RESULTS')")
        # The landing page: the workflow description with the stage-by-stage table.
        rows = b.wait_for(
            "Array.from(document.querySelector('table').rows).map(r => Array.from(r.cells).map(c => c.innerText))"
        )
        assert rows[0][:2] == ["stage", "train examples"] and "synthetic" in rows[0]
        assert [r[0] for r in rows[1:]] == summary["stage"].to_list()
        acc = [f"{100 * a:.1f}" for a in summary["accuracy"]]
        assert [r[2].split()[0] for r in rows[1:]] == acc
        b.screenshot(shots / "landing.png")
        assert_landing_page_is_readable(b, 1400)
        # Nothing is fetched from outside the file.
        fetched = b.eval("performance.getEntriesByType('resource').map(e => e.name)")
        assert all(u.startswith(("data:", "file:", "blob:")) for u in fetched), fetched

        # Every result of every category, opened the way a reader does: menu, category, eye button.
        shown = {}
        for cat in b.eval("Object.keys(categories).sort()"):
            b.eval("document.querySelector('nav ol li a').click()")  # breadcrumb: back to the menu
            b.wait_for(f"Array.from(document.querySelectorAll('nav a')).some(e => e.innerText.trim() === {cat!r})")
            b.eval(f"Array.from(document.querySelectorAll('nav a')).find(e => e.innerText.trim() === {cat!r}).click()")
            b.wait_for("document.querySelectorAll('nav a[iconname=eye]').length > 0")
            for i in range(b.eval("document.querySelectorAll('nav a[iconname=eye]').length")):
                b.eval(f"document.querySelectorAll('nav a[iconname=eye]')[{i}].click()")
                path, what = b.wait_for(SHOWN).split(" ", 1)
                shown[path] = what
                name = Path(path).stem if "gallery" not in path else f"gallery_{Path(path).stem}"
                if what == "iframe" and path.endswith("api_cost.html"):
                    head, n_rows = b.wait_for(
                        "document.querySelector('#table') && [Array.from(document.querySelectorAll('#table th'))"
                        ".map(c => c.innerText), document.querySelectorAll('#table tbody tr').length]",
                        frame="data:",
                    )
                    assert head[:5] == ["round", "rule", "backend", "model", "requests"] and n_rows == n_cost_rows
                elif what == "iframe":
                    cards = b.wait_for(
                        "document.querySelectorAll('.card').length > 0 && "
                        "Array.from(document.images).every(i => i.complete && i.naturalWidth > 0) && "
                        "[document.querySelectorAll('.card').length, document.images.length, "
                        "document.querySelectorAll('.badge').length, document.querySelector('h1').innerText]",
                        frame="data:",
                    )
                    n_cards, n_images, n_badges, title = cards
                    assert n_cards >= 1 and n_images == n_cards and n_badges >= n_cards, cards
                    assert title.startswith(f"Round {Path(path).stem.split('_')[1]}")
                b.screenshot(shots / f"{name}.png")
    plots = {p for p, what in shown.items() if what.startswith("img")}
    assert plots == {f"results/report/{name}.png" for name in FIGURES}
    assert all(int(what.split()[1]) > 300 for p, what in shown.items() if p in plots)  # decoded, real width
    assert {p for p, what in shown.items() if what == "iframe"} == {
        f"results/report/gallery/round_{r}.html" for r in (1, 2)
    } | {"results/report/api_cost.html"}
    # A narrower window (a laptop's): the first page still fits beside the workflow graph.
    with Browser(binary, width=1024, timeout=180) as b:
        b.open((reported_run / "results/report.html").as_uri())
        b.wait_for("document.body.innerText.includes('RESULTS') && !!document.querySelector('table')")
        b.screenshot(shots / "landing_1024.png")
        assert_landing_page_is_readable(b, 1024)


def assert_landing_page_is_readable(b: Browser, width: int) -> None:
    """The first page at `width` px: the stage table ends left of Snakemake's workflow graph (the rule graph
    beside the text) and nothing runs past the window's right edge."""
    layout = b.wait_for(
        "document.querySelector('#rulegraph') && document.querySelector('#rulegraph').getBoundingClientRect().width"
        " > 0 && {table: document.querySelector('table').getBoundingClientRect().toJSON(), graph: "
        "document.querySelector('#rulegraph').getBoundingClientRect().toJSON(), scroll: "
        "document.documentElement.scrollWidth, tables: document.querySelectorAll('table').length}"
    )
    assert layout["tables"] == 1, "the first page holds the stage table only (API use has a page of its own)"
    assert layout["table"]["right"] <= layout["graph"]["left"], (width, layout)
    assert layout["scroll"] <= width, (width, layout)


# The result on display, once its image has decoded or its iframe is in place: "<path> img <width>".
SHOWN = """(() => { const p = app.state.resultPath; if (!p) return null;
  const img = document.querySelector('#app img[src^="data:image/png"]');
  if (img && img.src === results[p].data_uri && img.complete && img.naturalWidth > 0)
    return p + ' img ' + img.naturalWidth;
  const f = document.querySelector('#app iframe');
  if (f && f.src === results[p].data_uri) return p + ' iframe';
  return null; })()"""


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = mathse(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_cli_summary_prints_the_table_and_json(reported_run, capsys):
    res = str(reported_run / "results")
    code, out, _ = run_cli(capsys, "summary", res)
    assert code == 0 and out.splitlines()[0].startswith("| stage | train examples | synthetic")
    code, out, _ = run_cli(capsys, "summary", res, "--json")
    rows = json.loads(out)
    assert [r["stage"] for r in rows] == ["base", "round_0", "round_1", "round_2"]


@pytest.mark.slow
def test_loss_curves_continue_across_rounds_beside_each_stages_accuracy(reported_run, capsys):
    """`mathse curves` on the tiny run (train.init: previous, 3 steps a round): the rounds' steps on one axis,
    each row's loss the one its round's train_metrics.parquet holds, and the summary's accuracy per stage."""
    res = reported_run / "results"
    metrics = {r: read_table(res / f"round_{r}/adapter/train_metrics.parquet", "train_metrics") for r in (0, 1, 2)}
    assert all(m["step"].to_list() == [1, 2, 3] for m in metrics.values())
    code, out, _ = run_cli(capsys, "curves", str(res), "--json")
    assert code == 0
    data = json.loads(out)
    assert [(s["round"], s["step"], s["global_step"]) for s in data["steps"]] == [
        (r, k, 3 * r + k) for r in (0, 1, 2) for k in (1, 2, 3)
    ]
    assert [s["loss"] for s in data["steps"]] == [x for r in (0, 1, 2) for x in metrics[r]["loss"].to_list()]
    summary = read_table(res / "summary.parquet", "summary")
    stages = {row["stage"]: row for row in data["stages"]}
    assert list(stages) == ["base", "round_0", "round_1", "round_2"]
    for row in summary.iter_rows(named=True):
        assert stages[row["stage"]]["synthetic"] == pytest.approx(100 * row["accuracy"])
    assert stages["base"]["steps"] is None and stages["round_2"]["first_step"] == 7
    assert stages["round_1"]["loss_last"] == metrics[1]["loss"][-1]
    code, out, _ = run_cli(capsys, "curves", str(res), "--plot", str(reported_run / "curves.png"))
    lines = out.splitlines()
    assert code == 0 and lines[0].startswith("| stage | synthetic | init | steps | first_step | last_step |")
    assert [line.split(" | ")[0] for line in lines[2:6]] == ["| base", "| round_0", "| round_1", "| round_2"]
    assert "Generation (tokens and paths per second" in out
    png = (reported_run / "curves.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000


@pytest.mark.slow
def test_generation_jobs_record_their_speed_and_the_paths_cut_at_max_new_tokens(reported_run, capsys):
    res = reported_run / "results"
    for r in (1, 2):
        rollouts = read_table(res / f"round_{r}/rollouts.parquet", "rollout")
        (row,) = read_table(res / f"round_{r}/rollout_stats.parquet", "generation_stats").to_dicts()
        assert (row["rule"], row["stage"], row["round"], row["max_new_tokens"]) == ("rollout", f"round_{r - 1}", r, 24)
        assert row["paths"] == row["generated_paths"] == rollouts.height
        assert row["tokens"] == row["generated_tokens"] == rollouts["num_tokens"].sum()
        assert row["cut"] == (~rollouts["finished"]).sum()
        assert row["cut_share"] == pytest.approx(row["cut"] / rollouts.height)
        assert row["tokens_per_second"] > 0 and row["paths_per_second"] > 0
    for stage in ("base", "round_0", "round_1", "round_2"):
        (row,) = read_table(res / f"{stage}/evaluate_stats/synthetic.parquet", "generation_stats").to_dicts()
        assert (row["rule"], row["stage"], row["suite"], row["paths"]) == ("evaluate", stage, "synthetic", 9)
        assert 0 <= row["cut"] <= 9 and row["tokens"] > 0 and row["tokens_per_second"] > 0
    code, out, _ = run_cli(capsys, "curves", str(res), "--json")
    rows = {(g["rule"], g["stage"]): g for g in json.loads(out)["generation"]}
    assert set(rows) == {("rollout", "round_0"), ("rollout", "round_1")} | {
        ("evaluate", s) for s in ("base", "round_0", "round_1", "round_2")
    }


@pytest.mark.slow
def test_cli_show_prints_one_problems_paths_verdicts_and_image(reported_run, capsys):
    path = reported_run / "results/round_1/judgments.parquet"
    judged = read_table(path, "judgment")
    wrong = judged.filter(pl.col("status") == "WRONG")
    assert wrong.height, "the tiny run's round 1 judges some paths WRONG (the run is deterministic)"
    pid = wrong["problem_id"][0]
    mine = judged.filter(pl.col("problem_id") == pid)
    code, out, _ = run_cli(capsys, "show", str(path), "--problem", pid)
    assert code == 0
    assert out.startswith(f"{pid} in {path} (judgment, {mine.height} row")
    assert f"images:   results/data/images/{pid}.png" in out
    assert out.count("\n- round=1 sample_idx=") == mine.height
    assert out.count("ORM: ") == mine.height
    assert "error step: " in out and "analysis: " in out
    code, out, _ = run_cli(capsys, "show", str(path), "--problem", pid, "--json")
    data = json.loads(out)
    assert data["kind"] == "judgment" and data["problem"]["problem_id"] == pid
    assert data["problem"]["images"] == [f"results/data/images/{pid}.png"]
    assert (reported_run / data["problem"]["images"][0]).exists()
    assert [r["sample_idx"] for r in data["rows"]] == sorted(mine["sample_idx"].to_list())
    assert {r["status"] for r in data["rows"]} == set(mine["status"])
    code, _, err = run_cli(capsys, "show", str(path), "--problem", "no-such-problem")
    assert code == 1 and "no rows for problem 'no-such-problem'" in err


@pytest.mark.slow
def test_cli_diff_lists_the_test_problems_that_flipped(reported_run, capsys):
    res = reported_run / "results"
    a = read_table(res / "round_0/scores/synthetic.parquet", "score").select("problem_id", a="correct")
    b = read_table(res / "round_2/scores/synthetic.parquet", "score").select("problem_id", b="correct")
    both = a.join(b, on="problem_id")
    fixed = sorted(both.filter(~pl.col("a") & pl.col("b"))["problem_id"])
    broken = sorted(both.filter(pl.col("a") & ~pl.col("b"))["problem_id"])
    code, out, _ = run_cli(capsys, "diff", "round_0", "round_2", "--results", str(res), "--json")
    assert code == 0
    data = json.loads(out)
    assert (data["before"], data["after"]) == ("round_0", "round_2")
    (suite,) = data["suites"]
    assert suite["suite"] == "synthetic" and suite["problems"] == both.height
    assert suite["counts"]["wrong→correct"] == len(fixed) and suite["counts"]["correct→wrong"] == len(broken)
    assert sum(suite["counts"].values()) == both.height
    flipped = {f["problem_id"]: f["transition"] for f in suite["flipped"]}
    assert sorted(p for p, t in flipped.items() if t == "wrong→correct") == fixed
    assert sorted(p for p, t in flipped.items() if t == "correct→wrong") == broken
    code, out, _ = run_cli(capsys, "diff", "0", "2", "--results", str(res), "--suite", "synthetic")
    assert code == 0 and out.startswith(f"synthetic: round_0 -> round_2, {both.height} problems")
    assert f"wrong→correct ({len(fixed)}):" in out and f"correct→wrong ({len(broken)}):" in out
    code, _, err = run_cli(capsys, "diff", "round_0", "round_9", "--results", str(res))
    assert code == 1 and "round_9" in err


@pytest.mark.slow
def test_mathse_command_runs_as_a_program(reported_run):
    # The console script's entry point, as a user runs it (python -m for the worktree's package).
    proc = subprocess.run(
        [sys.executable, "-m", "mathse.cli", "diff", "base", "round_1", "--json"],
        capture_output=True,
        text=True,
        cwd=reported_run,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["after"] == "round_1"


def test_api_use_per_round_is_a_report_page_of_its_own(tmp_path):
    import re

    from mathse.artifacts import SCHEMAS, write_table
    from mathse.reporting.report_pages import cost_page

    def row(r, rule, requests, hits):
        base = {k: 0 for k, t in SCHEMAS["api_cost"].items() if t == pl.Int64}
        base.update(round=r, rule=rule, backend="openai", model="gpt-4o", endpoint="http://127.0.0.1:1/v1",
                    requests=requests, cache_hits=hits, prompt_tokens=10 * requests, seconds=1.0)  # fmt: skip
        return base

    write_table(pl.DataFrame([row(0, "distill", 12, 0)]), tmp_path / "d.parquet", "api_cost")
    write_table(pl.DataFrame([row(1, "reflect", 3, 9)]), tmp_path / "r.parquet", "api_cost")
    page = cost_page([str(tmp_path / "r.parquet"), str(tmp_path / "d.parquet")])
    rows = [re.findall(r"<td[^>]*>(.*?)</td>", r) for r in re.findall(r"<tr>(.*?)</tr>", page)]
    head = re.findall(r"<th(?: [^>]*)?>(.*?)</th>", page)
    assert head[:8] == ["round", "rule", "backend", "model", "requests", "retries", "cache_hits", "prompt_tokens"]
    assert rows[1][:8] == ["0", "distill", "openai", "gpt-4o", "12", "0", "0", "120"]  # sorted by round
    assert rows[2][:8] == ["1", "reflect", "openai", "gpt-4o", "3", "0", "9", "30"]
    assert "127.0.0.1" not in page
    assert "<td colspan" in cost_page([])
