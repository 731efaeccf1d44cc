from mathse.bench.images import bench_image_cache


def test_image_decoded_once_per_problem():
    result = bench_image_cache(n_problems=4, samples=3, rounds=2, repeats=1)
    assert result["uses"] == 24
    assert result["decodes_cached"] == 4
