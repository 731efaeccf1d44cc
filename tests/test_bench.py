from mathse.bench.images import bench_image_cache


def test_image_decoded_once_per_problem():
    result = bench_image_cache(n_problems=4, samples=3, rounds=2, repeats=1)
    assert result["uses"] == 24
    assert result["decodes_cached"] == 4


def test_packing_bench_reports_both_layouts_and_equal_losses():
    from mathse.bench.training import SHAPES, bench_packing, section

    result = bench_packing({"tiny": SHAPES["tiny"]}, n_batches=1, batch_size=3, repeats=1, lengths=(10, 80))
    r = result["tiny"]
    assert r["examples"] == 3 and len(r["lengths"]) == 3 and r["tokens"] == sum(r["lengths"])
    assert r["packed_slots"] == r["tokens"] < r["padded_slots"] == 3 * max(r["lengths"])
    assert r["padded_tokens_per_s"] > 0 and r["packed_tokens_per_s"] > 0 and r["ratio"] > 0
    assert r["loss_rel_diff"] < 1e-5
    lines = section(result)
    assert lines[0].startswith("## Training") and any(line.startswith("| tiny |") for line in lines)
