"""The summary table: one column per suite in run order, plus their average (the paper's layout)."""

import polars as pl

from mathse.reporting.summarize import markdown_table


def summary(rows):
    return pl.DataFrame(rows, schema=["suite", "stage", "accuracy", "n", "n_correct", "train_size"], orient="row")


def test_one_suite_has_no_average_column():
    table = markdown_table(summary([("synthetic", "base", 0.0, 9, 0, 0), ("synthetic", "round_0", 0.5, 9, 4, 12)]))
    assert table.splitlines() == [
        "| stage | train examples | synthetic |",
        "|---|---|---|",
        "| base | 0 | 0.0 |",
        "| round_0 | 12 | 50.0 |",
    ]


def test_suites_keep_run_order_and_get_an_average():
    rows = [
        ("gps", "base", 0.25, 4, 1, 0),
        ("mathvista", "base", 0.5, 4, 2, 0),
        ("mathverse", "base", 0.0, 5, 0, 0),
        ("mathvision", "base", 0.75, 4, 3, 0),
        ("gps", "round_0", 0.5, 4, 2, 10),
        ("mathvista", "round_0", 0.5, 4, 2, 10),
    ]
    lines = markdown_table(summary(rows)).splitlines()
    assert lines[0] == "| stage | train examples | gps | mathvista | mathverse | mathvision | average |"
    assert lines[2] == "| base | 0 | 25.0 | 50.0 | 0.0 | 75.0 | 37.5 |"
    assert lines[3] == "| round_0 | 10 | 50.0 | 50.0 | - | - | - |"  # no average over missing suites
