from mathse.bench.images import bench_image_cache


def test_image_decoded_once_per_problem():
    result = bench_image_cache(n_problems=4, samples=3, rounds=2, repeats=1)
    assert result["uses"] == 24
    assert result["decodes_cached"] == 4


def test_data_stages_bench_reports_every_stage_and_the_bounds():
    from mathse.bench.data import STAGES, bench_data_stages, section

    result = bench_data_stages(sizes=(1000, 2000), compare_rows=1000)
    assert [(r["rows"], r["stage"]) for r in result["runs"]] == [(n, s) for n in (1000, 2000) for s in STAGES]
    assert all(r["peak_mib"] > 0 and r["seconds"] >= 0 for r in result["runs"])
    assert set(result["growth"]) == set(STAGES) and result["growth"]["judge"]["to_rows"] == 2000
    assert set(result["bounds"]) >= {"rows", "target_seconds", "target_mib", "max_seconds", "max_peak_mib", "within"}
    assert result["compare"]["rows"] == 1000 and result["compare"]["ratio"] > 0
    assert any("| 2,000 | judge |" in line for line in section(result))
