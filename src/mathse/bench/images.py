"""Image preprocessing: each problem's image decoded once and cached, never per sample per round."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from PIL import Image

from mathse.modeling import load_image


def _decode(path: str) -> Image.Image:
    with Image.open(path) as img:
        return img.convert("RGB")


def bench_image_cache(n_problems: int = 64, samples: int = 4, rounds: int = 3, repeats: int = 5) -> dict:
    """Decode calls and time for k samples x R rounds of the same problems: cached vs decode per use."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i in range(n_problems):
            path = str(Path(tmp) / f"p{i}.png")
            Image.new("RGB", (224, 224), (i % 256, 100, 200)).save(path)
            paths.append(path)
        uses = [p for _ in range(rounds) for p in paths for _ in range(samples)]
        uncached, cached = [], []
        for _ in range(repeats):  # alternate the two variants
            t0 = time.perf_counter()
            for p in uses:
                _decode(p)
            uncached.append(time.perf_counter() - t0)
            load_image.cache_clear()
            t0 = time.perf_counter()
            for p in uses:
                load_image(p)
            cached.append(time.perf_counter() - t0)
            decodes = load_image.cache_info().misses
        load_image.cache_clear()
    return {
        "uses": len(uses),
        "decodes_cached": decodes,
        "decodes_uncached": len(uses),
        "ratio": statistics.median(uncached) / statistics.median(cached),
    }


def section(result: dict) -> list[str]:
    """BENCHMARKS.md lines for this figure."""
    return [
        "## Image preprocessing (decode once per problem)",
        f"{result['uses']} image uses (64 problems x 4 samples x 3 rounds): {result['decodes_cached']} decodes with",
        f"the cache vs {result['decodes_uncached']} without; time ratio uncached/cached {result['ratio']:.1f}x.",
        "",
    ]
