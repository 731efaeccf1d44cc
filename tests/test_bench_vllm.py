"""`python -m mathse.bench vllm`: our hf backend and the vllm backend (in .venv-vllm) on the same prompts."""

from __future__ import annotations

import pytest
from test_vllm import needs_vllm_venv, vllm_python

from mathse.bench.__main__ import main, merge

OLD = ["# Benchmarks", "", "old header", "", "## Rollout generation (batched)", "| mid | 13x |", "", "## Data", "x", ""]


def test_a_figure_run_alone_replaces_its_section_and_keeps_the_others():
    new = ["## Data", "y", ""]
    assert merge(OLD, ["# new header", ""], [new], whole=False) == OLD[:7] + new
    added = ["## Rollout generation: hf backend vs vLLM", "| tiny |", ""]
    assert merge(OLD, ["# new header", ""], [added], whole=False) == OLD + added
    assert merge(OLD, ["# new header", ""], [new], whole=True) == ["# new header", "", *OLD[4:7], *new]
    assert merge([], ["# new header", ""], [new], whole=False) == ["# new header", "", *new]


@pytest.mark.vllm
@pytest.mark.slow
@needs_vllm_venv
def test_vllm_bench_runs_both_backends_compares_greedy_paths_and_writes_the_figure(tmp_path, monkeypatch):
    from mathse.bench import vllm_compare

    result = vllm_compare.bench_vllm(
        models=("tiny",), n_prompts=3, num_samples=2, max_new_tokens=8, repeats=1, python=vllm_python(),
        vllm={"enforce_eager": True},  # no compilation: a faster start
    )  # fmt: skip
    r = result["models"]["tiny"]
    assert (r["prompts"], r["samples"], r["repeats"]) == (3, 2, 1)
    assert r["hf_tok_s"] > 0 and r["vllm_tok_s"] > 0 and r["hf_over_vllm"] > 0  # both produced paths
    assert r["greedy_total"] == 3 and 0 <= r["greedy_identical"] <= r["greedy_same_text"] <= 3
    assert result["versions"]["vllm"].startswith("0.") and result["engine"]["enforce_eager"] is True

    # The CLI writes the figure into an existing BENCHMARKS.md, keeping the other figures' sections.
    out = tmp_path / "BENCHMARKS.md"
    out.write_text("\n".join(OLD))
    monkeypatch.setattr(vllm_compare, "bench_vllm", lambda: result)
    for _ in range(2):  # a rerun replaces the figure, it does not add a second one
        main(["vllm", "--out", str(out)])
        text = out.read_text()
        assert text.startswith("\n".join(OLD))
        assert text.count("## Rollout generation: hf backend vs vLLM") == 1
    row = next(line for line in text.splitlines() if line.startswith("| tiny |"))
    assert row.split(" | ")[6] == f"{r['greedy_identical']}/3"  # the greedy comparison is reported
    assert f"{r['greedy_identical']} of 3 greedy paths are identical token for token" in text
