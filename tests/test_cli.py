"""The `mathse import` and `mathse score` commands, on fixture files in the published schemas."""

import polars as pl

from mathse.artifacts import SCHEMAS, read_table
from mathse.cli import main


def test_import_then_score_mathvista(benchmark_files, tmp_path, capsys):
    problems = tmp_path / "mathvista.parquet"
    assert main(["import", "--format", "mathvista", str(benchmark_files["mathvista"]), "-o", str(problems)]) == 0
    assert "5 problems; 5 quarantined" in capsys.readouterr().out
    responses = tmp_path / "responses.parquet"
    pl.DataFrame(
        {
            "problem_id": ["1", "2", "3", "4"],  # MathVista's own pids work too
            "response": ["(B) 135°", "The answer is 13.", "The answer is 1.449", 'The answer is "[2007, 2008]".'],
        }
    ).write_parquet(responses)
    scores = tmp_path / "scores.parquet"
    args = ["score", "--suite", "mathvista", "--problems", str(problems), "--responses", str(responses)]
    assert main([*args, "-o", str(scores)]) == 0
    captured = capsys.readouterr()
    assert "mathvista: accuracy 60.00% (3/5)" in captured.out
    assert "1 of 5 problems have no response" in captured.err
    assert "task geometry problem solving: 100.00% (n=2)" in captured.out
    table = read_table(scores, "score")
    assert dict(table.schema) == SCHEMAS["score"]
    assert table["correct"].to_list() == [True, False, True, True, False]
    assert table["rule"].to_list() == ["letter", "answer_is", "answer_is", "quick_extract", "empty"]
    assert table["matched_by"][0] == "letter"


def test_score_prints_mathverse_versions_and_mathvision_subjects(benchmark_files, tmp_path, capsys):
    for fmt, responses in [
        ("mathverse", {"mathverse-1": "The answer is B", "mathverse-2": "The answer is C", "mathverse-3": "5"}),
        ("mathvision", {"mathvision-1": "The answer is \\boxed{C}", "mathvision-2": "The answer is 12."}),
    ]:
        problems = tmp_path / f"{fmt}.parquet"
        assert main(["import", "--format", fmt, str(benchmark_files[fmt]), "-o", str(problems)]) == 0
        resp = tmp_path / f"{fmt}.jsonl"
        pl.DataFrame({"problem_id": list(responses), "response": list(responses.values())}).write_ndjson(resp)
        out = tmp_path / f"{fmt}_scores.parquet"
        assert (
            main(["score", "--suite", fmt, "--problems", str(problems), "--responses", str(resp), "-o", str(out)]) == 0
        )
    printed = capsys.readouterr().out
    assert "mathverse: accuracy 40.00% (2/5)" in printed
    assert "problem_version Text Dominant: 100.00% (n=1)" in printed
    assert "problem_version Vision Only: 0.00% (n=1)" in printed
    assert "mathvision: accuracy 50.00% (2/4)" in printed
    assert "subject counting: 100.00% (n=1)" in printed and "level 2: 100.00% (n=1)" in printed


def test_cli_errors_are_one_line(benchmark_files, tmp_path, capsys):
    out = str(tmp_path / "x.parquet")
    assert main(["import", "--format", "mathvision", str(benchmark_files["mathvista"]), "-o", out]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mathse import:") and "field 'id' missing" in err
    main(["import", "--format", "mathvision", str(benchmark_files["mathvision"]), "-o", out])
    resp = tmp_path / "r.parquet"
    pl.DataFrame({"problem_id": ["nope"], "response": ["1"]}).write_parquet(resp)
    args = ["score", "--suite", "mathvision", "--problems", out, "--responses", str(resp), "-o", str(tmp_path / "s")]
    assert main(args) == 1
    assert "not in the problems" in capsys.readouterr().err
