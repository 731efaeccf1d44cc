"""Bad input gets a clear error or is quarantined with its reason; every other row still makes it through."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from mathse.artifacts import SchemaError, read_table
from mathse.judging.orm.rule import judge_path
from mathse.problems.validate import check_problems


def _row(pid, images, **kw):
    row = {"problem_id": pid, "question": "What is the sum of the two bars?", "images": images, "choices": [],
           "answer": "8", "answer_type": "integer", "precision": None, "source": "chart", "split": "pool",
           "solution_steps": ["The left bar is 3.", "The right bar is 5.", "3 + 5 = 8."], "metadata": "{}"}  # fmt: skip
    return {**row, **kw}


@pytest.fixture
def corpus(tmp_path):
    good = tmp_path / "good.png"
    Image.new("RGB", (56, 56), "white").save(good)
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    g = [str(good)]
    rows = [
        _row("ok-1", g),
        _row("missing-image", [str(tmp_path / "nowhere.png")]),
        _row("corrupt-image", [str(corrupt)]),
        _row("ok-2", g),
        _row("empty-question", g, question="   "),
        _row("unknown-type", g, answer_type="matrix"),
        _row("ok-1", g),  # duplicate of row 0
        _row("long-question", g, question="x" * 30_000),
        _row("bad-utf8", g, question="What is \ufffd\ufffd?"),
        _row("empty-answer", g, answer=""),
        _row("choice-without-choices", g, answer_type="choice"),
        _row("ok-3", g + g),
    ]
    return pl.DataFrame(rows)


EXPECTED = {
    ("missing-image", "images"): "image not found: {tmp}/nowhere.png",
    ("corrupt-image", "images"): "image cannot be decoded (UnidentifiedImageError: ",
    ("empty-question", "question"): "empty question",
    (
        "unknown-type",
        "answer_type",
    ): "unknown answer_type 'matrix'; expected one of ['choice', 'float', 'integer', 'list', 'text']",
    ("ok-1", "problem_id"): "duplicate problem_id 'ok-1' (first at row 0)",
    ("long-question", "question"): "question is 30000 characters, over the limit of 20000",
    ("bad-utf8", "question"): "question contains bytes that were not valid UTF-8 (U+FFFD)",
    ("empty-answer", "answer"): "empty answer",
    ("choice-without-choices", "choices"): "answer_type is 'choice' but there are no choices",
}


def test_every_bad_row_is_quarantined_with_its_reason(corpus, tmp_path):
    good, bad = check_problems(corpus, "pool.parquet")
    assert good["problem_id"].to_list() == ["ok-1", "ok-2", "ok-3"]
    assert set(bad["file"]) == {"pool.parquet"}
    got = {(r["problem_id"], r["field"]): r["reason"] for r in bad.iter_rows(named=True)}
    assert got.keys() == EXPECTED.keys()
    for key, reason in EXPECTED.items():
        assert got[key].startswith(reason.format(tmp=tmp_path)), (key, got[key])
    assert bad.filter(pl.col("problem_id") == "ok-1")["row"].to_list() == [6]
    assert good.height + bad["row"].n_unique() == corpus.height


def test_a_table_with_wrong_columns_names_the_file_and_columns(tmp_path):
    path = tmp_path / "bench.parquet"
    pl.DataFrame({"pid": ["1"], "question": ["q"]}).write_parquet(path)
    with pytest.raises(SchemaError) as err:
        read_table(path, "problem")
    assert str(path) in str(err.value) and "'answer'" in str(err.value) and "'pid'" in str(err.value)


def test_non_utf8_bytes_in_a_text_column_name_the_column(tmp_path, corpus):
    path = tmp_path / "pool.parquet"
    table = corpus.head(1).to_arrow()
    idx = table.schema.get_field_index("question")
    table = table.set_column(idx, "question", pa.array([b"caf\xe9 \xff"], type=pa.binary()))
    pq.write_table(table, path)
    with pytest.raises(SchemaError) as err:
        read_table(path, "problem")
    assert str(path) in str(err.value) and "column 'question'" in str(err.value)


REF = ["The left bar is 3.", "The right bar is 5.", "3 + 5 = 8."]


@pytest.mark.parametrize(
    ("response", "analysis"),
    [
        ("", "The response has no numbered reasoning steps. The path gives no final answer."),
        ("Step 1: The left bar is 3." + " and" * 5000, "The path gives no final answer."),
        ("Step 1: The left bar is 3.\nStep 2: The right bar is 5.\nStep 3: 3 + 5 = 8.", "no final answer"),
        ("\ufffd\ufffd garbage \x00", "The response has no numbered reasoning steps."),
    ],
)
def test_empty_endless_or_answerless_outputs_are_judged_wrong_not_crashed(response, analysis):
    extracted, ok, verdict = judge_path(response, "8", REF)
    assert extracted is None and not ok and verdict.status == "WRONG"
    assert analysis in verdict.error_analysis


def test_a_full_disk_during_a_write_leaves_no_partial_artifact(tmp_path):
    code = """
        import resource, signal
        import polars as pl
        from mathse.artifacts import write_table
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG, as a full disk gives ENOSPC
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        n = 50000
        rows = pl.DataFrame({"file": ["f"] * n, "row": list(range(n)), "problem_id": [str(i) for i in range(n)],
                             "field": ["x"] * n, "reason": [f"reason {i}" for i in range(n)]})
        try:
            write_table(rows, "out/q.parquet", "quarantine")
        except OSError as err:
            print("OSError", err)
    """
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=tmp_path, capture_output=True, text=True)
    assert "OSError out/q.parquet: could not write the quarantine artifact" in proc.stdout, proc.stderr[-2000:]
    assert list((tmp_path / "out").iterdir()) == []
