"""Procedural visual-math problems: images drawn with PIL, exact answers, step-by-step traces.

Each family draws two or three numbers, renders them in an image and asks a question whose solution
takes several steps (read, read, compute). The trace (`solution_steps`) is what the programmatic teacher
writes and what the rule ORM compares a sampled path against to find the first wrong step.
Everything is deterministic given (seed, split, index).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from PIL import Image, ImageDraw, ImageFont

from mathse.artifacts import write_table
from mathse.config import DataConfig
from mathse.problems.validate import check_problems

log = logging.getLogger(__name__)

SPLITS = {"seed": 0, "pool": 1, "test": 2}
COLORS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189)]


@dataclass(frozen=True)
class Problem:
    question: str
    steps: list[str]
    answer: int
    image: Image.Image
    params: dict


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _text(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, size: int) -> None:
    draw.text(xy, text, fill=(0, 0, 0), font=_font(size), anchor="mm")


def chart(rng: np.random.Generator, size: int, max_value: int) -> Problem:
    """Two labelled bars; the sum of the bars or how much taller one is than the other."""
    a, b = (int(v) for v in rng.integers(1, max_value + 1, size=2))
    img = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(img)
    font = max(10, size // 4)
    base, top = size - 2, font + 2
    colors = rng.choice(len(COLORS), size=2, replace=False)
    for i, v in enumerate((a, b)):
        x0 = size * (0.12 + 0.48 * i)
        x1 = x0 + size * 0.3
        y0 = base - (base - top) * v / max_value
        draw.rectangle([x0, y0, x1, base], fill=COLORS[colors[i]])
        _text(draw, ((x0 + x1) / 2, max(font / 2, y0 - font / 2)), str(v), font)
    steps = [f"The left bar is {a}.", f"The right bar is {b}."]
    if rng.random() < 0.5:
        question = "What is the sum of the two bars?"
        answer = a + b
        steps.append(f"{a} + {b} = {answer}.")
    else:
        question = "What is the difference between the taller bar and the shorter bar?"
        hi, lo = max(a, b), min(a, b)
        answer = hi - lo
        steps.append(f"{hi} - {lo} = {answer}.")
    return Problem(question, steps, answer, img, {"a": a, "b": b})


def geometry(rng: np.random.Generator, size: int, max_value: int) -> Problem:
    """A rectangle with labelled width and height; its perimeter in two arithmetic steps."""
    w, h = (int(v) for v in rng.integers(1, max_value + 1, size=2))
    img = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(img)
    font = max(10, size // 4)
    left, bottom = font + 2, size - font - 2
    right = left + (size - left - 3) * (0.45 + 0.55 * w / max_value)
    top = bottom - (bottom - 3) * (0.45 + 0.55 * h / max_value)
    draw.rectangle([left, top, right, bottom], outline=COLORS[int(rng.integers(len(COLORS)))], width=2)
    _text(draw, ((left + right) / 2, bottom + font / 2 + 1), str(w), font)
    _text(draw, (left / 2, (top + bottom) / 2), str(h), font)
    s = w + h
    steps = [f"The width is {w}.", f"The height is {h}.", f"{w} + {h} = {s}.", f"2 x {s} = {2 * s}."]
    return Problem("What is the perimeter of the rectangle?", steps, 2 * s, img, {"w": w, "h": h})


def counting(rng: np.random.Generator, size: int, max_value: int) -> Problem:
    """Dots in two rows; count each row, then add."""
    per_row = max(1, min(5, max_value))
    a, b = (int(v) for v in rng.integers(1, per_row + 1, size=2))
    img = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(img)
    r = size / 16
    color = COLORS[int(rng.integers(len(COLORS)))]
    for row, n in enumerate((a, b)):
        y = size * (0.3 + 0.4 * row)
        for i in range(n):
            x = size * (0.1 + 0.8 * (i + 0.5) / per_row)
            draw.ellipse([x - r, y - r, x + r, y + r], fill=color)
    steps = [f"The top row has {a} dots.", f"The bottom row has {b} dots.", f"{a} + {b} = {a + b}."]
    return Problem("How many dots are there in total?", steps, a + b, img, {"a": a, "b": b})


FAMILIES = {"chart": chart, "geometry": geometry, "counting": counting}


def make_problem(seed: int, split: str, index: int, cfg: DataConfig) -> tuple[str, Problem]:
    family = cfg.families[index % len(cfg.families)]
    rng = np.random.default_rng([seed, SPLITS[split], index])
    return family, FAMILIES[family](rng, cfg.image_size, cfg.max_value)


def generate_split(seed: int, split: str, n: int, cfg: DataConfig, image_dir: Path) -> pl.DataFrame:
    """Generate `n` problems of `split`, saving each image as PNG under `image_dir`."""
    image_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        family, p = make_problem(seed, split, i, cfg)
        pid = f"{split}-{i:06d}"
        image_path = image_dir / f"{pid}.png"
        p.image.save(image_path, format="PNG")
        rows.append(
            {
                "problem_id": pid,
                "question": p.question,
                "images": [str(image_path)],
                "choices": [],
                "answer": str(p.answer),
                "answer_type": "integer",
                "precision": None,
                "source": family,
                "split": split,
                "solution_steps": p.steps,
                "metadata": json.dumps(p.params, sort_keys=True),
            }
        )
    return pl.DataFrame(rows)


def prepare(
    seed: int,
    cfg: DataConfig,
    seed_out: str,
    pool_out: str,
    bench_outs: dict[str, str],
    quarantine_out: str | None = None,
) -> None:
    """The prepare rule: seed part, pool and held-out suites as canonical problem parquet.

    Every table is checked (`mathse.problems.validate`); bad rows go to `quarantine_out` with their reasons.
    """
    image_dir = Path(seed_out).parent / "images"
    tables = {}  # output path -> (problems, where they came from)
    quarantined = []
    if cfg.source == "files":
        from mathse.problems.sources import load_sources

        seed_part, pool, bad = load_sources(cfg, seed, Path(seed_out).parent / "sources")
        quarantined.append(bad)
        tables[seed_out] = (seed_part, "seed (data.seed_sources or drawn from data.pool_sources)")
        tables[pool_out] = (pool, "pool (data.pool_sources)")
    else:
        tables[seed_out] = (generate_split(seed, "seed", cfg.n_seed, cfg, image_dir), "seed (procedural)")
        tables[pool_out] = (generate_split(seed, "pool", cfg.n_pool, cfg, image_dir), "pool (procedural)")
    for path in bench_outs.values():
        tables[path] = (generate_split(seed, "test", cfg.n_test, cfg, image_dir), "test (procedural)")
    for path, (problems, origin) in tables.items():
        good, bad = check_problems(problems, origin)
        table = write_table(good, path, "problem")
        quarantined.append(bad)
        counts = dict(table.group_by("source").len().sort("source").iter_rows())
        log.info("%s: %d problems from %s %s", path, table.height, origin, counts)
    if quarantine_out:
        bad = write_table(pl.concat(quarantined), quarantine_out, "quarantine")
        log.info("%s: %d quarantined rows", quarantine_out, bad.height)


def tokenizer_corpus(cfg: DataConfig, n: int = 400) -> list[str]:
    """Questions and solutions covering every family and number, to train the tiny tokenizer on."""
    from mathse.prompts import format_solution

    texts = []
    for i in range(n):
        _, p = make_problem(12345, "seed", i, cfg)
        texts += [p.question, format_solution(p.steps, str(p.answer))]
    texts += [str(v) for v in range(0, 4 * cfg.max_value + 10)]
    return texts
