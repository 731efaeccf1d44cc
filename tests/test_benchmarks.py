"""Importers: published benchmark files in, canonical problem parquet and quarantine report out."""

import json
from pathlib import Path

import polars as pl
import pytest

from mathse.artifacts import SCHEMAS, read_table, write_table
from mathse.problems.benchmarks import import_benchmark, report_paths
from mathse.problems.benchmarks.contamination import find_contamination, question_key
from mathse.problems.benchmarks.files import BenchmarkFormatError
from mathse.problems.benchmarks.formats import parse_inline_choices


def quarantine_of(out: Path) -> list[dict]:
    return [json.loads(line) for line in report_paths(out)["quarantine"].read_text().splitlines()]


def meta(table: pl.DataFrame, pid: str) -> dict:
    return json.loads(table.filter(pl.col("problem_id") == pid)["metadata"][0])


def test_mathvista_every_answer_type_and_quarantine(benchmark_files, tmp_path, caplog):
    caplog.set_level("INFO")
    out = tmp_path / "mathvista.parquet"
    table = import_benchmark("mathvista", benchmark_files["mathvista"], out)
    assert dict(read_table(out, "problem").schema) == SCHEMAS["problem"]
    assert table["problem_id"].to_list() == [f"mathvista-{i}" for i in range(1, 6)]
    assert table["answer_type"].to_list() == ["choice", "integer", "float", "list", "text"]
    assert table["answer"].to_list() == ["135°", "12", "1.45", "[2007, 2008]", "Yes"]
    assert table["choices"][0].to_list() == ["145°", "135°", "35°", "55°"]
    assert table["precision"].to_list() == [None, None, 2, None, None]
    assert table["question"][0].startswith("Hint:")  # the published prompt (query) is what the model sees
    m = meta(table, "mathvista-3")
    assert (m["unit"], m["task"], m["question"], m["answer_type"]) == (
        "cm",
        "geometry problem solving",
        "What is the length of AB?",
        "float",
    )
    assert meta(table, "mathvista-1")["answer_letter"] == "B"
    for images in table["images"]:
        assert len(images) == 1 and Path(images[0]).is_file() and Path(images[0]).parent.name == "mathvista_images"
    reasons = {(q["id"], q["field"]): q["reason"] for q in quarantine_of(out)}
    assert reasons == {
        ("6", "answer_type"): "unknown answer type 'fraction'",
        ("7", "answer"): "empty answer",
        ("8", "choices"): "malformed choices: answer '3' is not one of the options",
        ("2", "id"): reasons[("2", "id")],
        ("10", "image"): "image file not found: images/missing.jpg",
    }
    assert reasons[("2", "id")].startswith("duplicated id 'mathvista-2'")
    assert "10 rows read, 5 imported" in caplog.text and "5 quarantined" in caplog.text


def test_mathvista_gps_subset_is_its_own_suite(benchmark_files, tmp_path):
    out = tmp_path / "gps.parquet"
    table = import_benchmark("mathvista", benchmark_files["mathvista"], out, where={"task": "geometry problem solving"})
    assert table["problem_id"].to_list() == ["mathvista-1", "mathvista-3"]


def test_import_writes_each_image_once(benchmark_files, tmp_path):
    out = tmp_path / "mathverse.parquet"
    table = import_benchmark("mathverse", benchmark_files["mathverse"], out)
    first = table.filter(pl.col("problem_id") == "mathverse-1")["images"][0][0]
    assert table.filter(pl.col("problem_id") == "mathverse-2")["images"][0][0] == first
    assert len(list(report_paths(out)["images"].iterdir())) == 4  # 5 problems, 4 distinct images
    before = Path(first).stat().st_mtime_ns
    import_benchmark("mathverse", benchmark_files["mathverse"], out)
    assert Path(first).stat().st_mtime_ns == before


def test_mathverse_versions_choices_and_quarantine(benchmark_files, tmp_path):
    out = tmp_path / "mathverse.parquet"
    table = import_benchmark("mathverse", benchmark_files["mathverse"], out)
    assert table["problem_id"].to_list() == [f"mathverse-{i}" for i in range(1, 6)]
    assert table["answer_type"].to_list() == ["choice", "choice", "integer", "float", "text"]
    assert table["choices"][0].to_list() == ["30°", "40°", "50°", "60°"]
    assert table["choices"][1].to_list() == []  # Vision Only: the options are in the image
    assert table["question"][1].startswith("Please first conduct reasoning")  # query_cot
    assert [meta(table, f"mathverse-{i}")["problem_version"] for i in (1, 2, 3)] == [
        "Text Dominant",
        "Vision Only",
        "Text Lite",
    ]
    reasons = {q["id"]: q["reason"] for q in quarantine_of(out)}
    assert reasons == {
        "6": "malformed choices: multiple-choice answer 'Z' is not an option letter",
        "7": "unknown question type 'essay'",
    }


def test_mathvision_from_the_data_folder(benchmark_files, tmp_path):
    out = tmp_path / "mathvision.parquet"
    table = import_benchmark("mathvision", benchmark_files["mathvision"].parent.parent, out)
    assert table["problem_id"].to_list() == [f"mathvision-{i}" for i in range(1, 5)]
    assert table["answer_type"].to_list() == ["choice", "integer", "float", "text"]
    assert "(C) 6" in table["question"][0]  # options appended to the prompt
    m = meta(table, "mathvision-1")
    assert (m["subject"], m["level"], m["answer_letter"]) == ("metric geometry - angle", 2, "C")
    reasons = {q["id"]: (q["field"], q["reason"]) for q in quarantine_of(out)}
    assert reasons["5"][0] == "options" and reasons["5"][1].startswith("malformed choices")
    assert reasons["6"] == ("image", "image file not found: images/6.jpg")


def test_generic_jsonl_several_images_and_schema_errors(benchmark_files, tmp_path):
    out = tmp_path / "mine.parquet"
    table = import_benchmark("jsonl", benchmark_files["jsonl"], out)
    assert table["problem_id"].to_list() == ["g1", "g2", "g3", "g4"]
    assert [len(i) for i in table["images"]] == [2, 1, 1, 1]
    assert table["answer_type"].to_list() == ["integer", "choice", "list", "float"]
    assert table["precision"].to_list() == [None, None, None, 2]
    assert meta(table, "g2")["answer_letter"] == "B" and meta(table, "g3")["subject"] == "graphs"
    reasons = {(q["id"], q["field"]): q["reason"] for q in quarantine_of(out)}
    assert reasons[("g5", "answer_type")] == "unknown answer type 'matrix'"
    assert reasons[("g6", "answer")].startswith("malformed choices")
    assert any(r.startswith("malformed JSON") for (_, f), r in reasons.items() if f == "<row>")


def test_mathvl_style_keys(benchmark_files, tmp_path):
    table = import_benchmark("mathvl", benchmark_files["mathvl"], tmp_path / "mathvl.parquet")
    assert table["problem_id"].to_list() == ["1", "2"]
    assert table["answer"].to_list() == ["14", "B"] and table["choices"][1].to_list() == ["3", "4"]


def test_wrong_format_names_file_row_and_field(benchmark_files, tmp_path):
    with pytest.raises(BenchmarkFormatError) as err:
        import_benchmark("mathvista", benchmark_files["mathverse"], tmp_path / "x.parquet")
    msg = str(err.value)
    assert str(benchmark_files["mathverse"]) in msg and "row 0" in msg and "'pid'" in msg
    with pytest.raises(FileNotFoundError):
        import_benchmark("mathvista", tmp_path / "nowhere", tmp_path / "x.parquet")


def test_contamination_is_reported_and_excludable(benchmark_files, tmp_path, data_dir, caplog):
    caplog.set_level("INFO")
    pool = tmp_path / "pool.parquet"
    gen = import_benchmark("jsonl", benchmark_files["jsonl"], tmp_path / "gen.parquet")
    # A training pool with g1's images under another question, and g3's question with no image.
    pool_rows = gen.filter(pl.col("problem_id").is_in(["g1", "g3"])).with_columns(
        problem_id=pl.lit("p") + pl.col("problem_id"), metadata=pl.lit("{}")
    )
    pool_rows = pool_rows.with_columns(
        question=pl.when(pl.col("problem_id") == "pg1").then(pl.lit("Another question")).otherwise("question"),
        images=pl.when(pl.col("problem_id") == "pg3").then(pl.lit([], pl.List(pl.String))).otherwise("images"),
    )
    write_table(pool_rows, pool, "problem")
    found = {f["problem_id"]: f["match"] for f in find_contamination(gen, [str(pool), str(data_dir / "pool.parquet")])}
    assert found == {"g1": "image", "g3": "question", "g4": "image"}  # g4 shows g1's first image
    kept = import_benchmark("jsonl", benchmark_files["jsonl"], tmp_path / "k.parquet", pool=[str(pool)])
    assert kept.height == 4 and "contamination: 3 of 4 problems" in caplog.text
    dropped = import_benchmark(
        "jsonl", benchmark_files["jsonl"], tmp_path / "d.parquet", pool=[str(pool)], contamination="exclude"
    )
    assert dropped["problem_id"].to_list() == ["g2"]


def test_inline_choices_and_question_key():
    assert parse_inline_choices("Find x.\nChoices:\nA:30°\nB:40°\nC:50°") == ["30°", "40°", "50°"]
    assert parse_inline_choices("Find x.\nChoices:\n(A) 1\n(B) 2") == ["1", "2"]
    assert parse_inline_choices("Find x.") == []
    assert question_key("  What is  the AREA?\n") == question_key("what is the area")


def test_json_releases_with_image_folders(tmp_path):
    """MathVista's testmini.json (pid -> problem) and MathVerse's testmini.json (a list), images in images/."""
    from conftest import draw_image

    (tmp_path / "images").mkdir()
    (tmp_path / "images/1.jpg").write_bytes(draw_image("1", "JPEG"))
    (tmp_path / "images/image_1.png").write_bytes(draw_image("v"))
    vista = {
        "1": {
            "pid": "1",
            "question": "How many?",
            "image": "images/1.jpg",
            "choices": None,
            "unit": None,
            "precision": None,
            "answer": "3",
            "question_type": "free_form",
            "answer_type": "integer",
            "query": "Question: How many?",
            "metadata": {"task": "figure question answering", "split": "testmini"},
        }
    }
    (tmp_path / "testmini.json").write_text(json.dumps(vista))
    table = import_benchmark("mathvista", tmp_path / "testmini.json", tmp_path / "out/vista.parquet")
    assert table["problem_id"].to_list() == ["mathvista-1"] and Path(table["images"][0][0]).is_file()
    verse = [
        {
            "sample_index": "1",
            "problem_index": "1",
            "problem_version": "Text Lite",
            "question": "Find x.",
            "image": "image_1.png",
            "answer": "4",
            "question_type": "free-form",
            "metadata": {"subject": "Plane Geometry"},
            "query_wo": "Find x.",
            "query_cot": "Find x, step by step.",
        }
    ]
    (tmp_path / "verse").mkdir()
    (tmp_path / "verse/testmini.json").write_text(json.dumps(verse))
    (tmp_path / "verse/images").symlink_to(tmp_path / "images")
    table = import_benchmark("mathverse", tmp_path / "verse", tmp_path / "out/verse.parquet")
    assert table["answer"].to_list() == ["4"] and table["question"].to_list() == ["Find x, step by step."]
