"""Shared fixtures: a tiny model and small procedural problem tables, made once per session."""

from __future__ import annotations

import os

# Under pytest-xdist (make test: one worker per core) each worker and the jobs it starts use one torch thread:
# two workers whose torch threads spin-wait for each other's cores run many times slower than either alone.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import secrets  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import requests  # noqa: E402
from filelock import FileLock  # noqa: E402

from mathse.config import DataConfig, TinyModelConfig
from mathse.problems.data import prepare
from mathse.training.tiny_model import make_tiny_model

ROOT = Path(__file__).resolve().parents[1]


# The slowest files first (measured with --durations, a file's tests together): pytest-xdist hands files to
# its workers in this order (make test: --no-loadscope-reorder), so the long ones start at once instead of
# ending the run alone. The SLURM test mostly waits on the scheduler's status checks; started first, on the
# worker beyond one per core, that wait overlaps the others' work.
SLOWEST_FILES = ("test_slurm.py", "test_vllm.py", "test_distributed.py", "test_docs.py", "test_reliability.py",
                 "test_workflow.py", "test_orm_train.py", "test_packaging.py", "test_bench.py", "test_hostile.py",
                 "test_experiments.py", "test_jobserver.py", "test_bench_vllm.py", "test_serve.py",
                 "test_model.py")  # fmt: skip


def pytest_collection_modifyitems(config, items) -> None:
    rank = {name: i for i, name in enumerate(SLOWEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each file's own order is kept


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("data")
    cfg = DataConfig(n_seed=12, n_pool=9, n_test=6)
    prepare(
        0,
        cfg,
        str(d / "seed.parquet"),
        str(d / "pool.parquet"),
        {"synthetic": str(d / "bench/synthetic.parquet")},
    )
    return d


def made_once(tmp_path_factory, name: str, make: Callable[[Path], None]) -> Path:
    """A folder made by `make` once per test run: under pytest-xdist the first worker to ask makes it, under a
    file lock in the run's shared temporary folder, and the others wait for it and read the same folder."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        folder = tmp_path_factory.mktemp(name)
        make(folder)
        return folder
    shared = tmp_path_factory.getbasetemp().parent  # the workers' folders lie side by side in it
    folder, done = shared / name, shared / f"{name}.done"
    with FileLock(str(shared / f"{name}.lock")):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)  # a worker that failed while making it
            folder.mkdir()
            make(folder)
            done.touch()
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    def make(folder: Path) -> None:
        make_tiny_model(str(folder / "tiny"), TinyModelConfig(), DataConfig(), seed=0)

    return made_once(tmp_path_factory, "model", make) / "tiny"


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """The whole DAG on tests/config_tiny.yaml, run once per test run (test_workflow, test_report, test_metrics).
    Read it only: a test that reruns, deletes or reports works on a copy (shutil.copytree(..., symlinks=True))."""
    from test_workflow import snakemake, write_config

    def make(workdir: Path) -> None:
        write_config(workdir)
        snakemake(workdir, "--profile", str(ROOT / "profiles/local"), "--cores", "2")

    return made_once(tmp_path_factory, "dag", make)


# ---------------------------------------------------------------------------------------------------
# Benchmark files in each benchmark's published schema: a few rows each, images drawn here.


def draw_image(text: str, fmt: str = "PNG", color=(31, 119, 180)) -> bytes:
    import io

    from PIL import Image, ImageDraw

    img = Image.new("RGB", (40, 40), "white")
    draw = ImageDraw.Draw(img)
    draw.rectangle([4, 20, 36, 36], fill=color)
    draw.text((6, 4), text, fill=(0, 0, 0))
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def write_mathvista(root: Path) -> Path:
    """testmini parquet as on the Hugging Face hub (AI4Math/MathVista), with bad rows at the end."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    def meta(task, split="testmini"):
        return {
            "category": "math-targeted-vqa",
            "context": "geometry diagram",
            "grade": "high school",
            "img_height": 40,
            "img_width": 40,
            "language": "english",
            "skills": ["geometry reasoning", "algebraic reasoning"],
            "source": "GeoQA+",
            "split": split,
            "task": task,
        }

    gps, fqa = "geometry problem solving", "figure question answering"
    angle = ["145°", "135°", "35°", "55°"]
    rows = [
        ("1", "What is angle B?", angle, None, None, "135°", "multi_choice", "text", gps),
        ("2", "How many bars are there?", None, None, None, "12", "free_form", "integer", fqa),
        ("3", "What is the length of AB?", None, "cm", 2.0, "1.45", "free_form", "float", gps),
        ("4", "Between which two years is the peak?", None, None, None, "[2007, 2008]", "free_form", "list", fqa),
        ("5", "Is the bar blue?", None, None, None, "Yes", "free_form", "text", fqa),
        ("6", "A bad answer type", None, None, None, "1/2", "free_form", "fraction", fqa),
        ("7", "An empty answer", None, None, None, "", "free_form", "integer", fqa),
        ("8", "Answer not an option", ["1", "2"], None, None, "3", "multi_choice", "text", gps),
        ("2", "A duplicated pid", None, None, None, "4", "free_form", "integer", fqa),
        ("10", "A missing image", None, None, None, "4", "free_form", "integer", fqa),
    ]
    table = []
    for i, (pid, q, choices, unit, precision, answer, qtype, atype, task) in enumerate(rows):
        hint = "Hint: Please answer the question and provide the final answer at the end.\n"
        query = (
            hint
            + f"Question: {q}"
            + ("\nChoices:\n" + "\n".join(f"({'ABCD'[j]}) {c}" for j, c in enumerate(choices)) if choices else "")
        )
        image = None if pid == "10" else {"bytes": draw_image(pid, "JPEG", (30 * i, 100, 50)), "path": f"{pid}.jpg"}
        table.append(
            {
                "pid": pid,
                "question": q,
                "image": f"images/{'missing' if pid == '10' else pid}.jpg",
                "decoded_image": image,
                "choices": choices,
                "unit": unit,
                "precision": precision,
                "answer": answer,
                "question_type": qtype,
                "answer_type": atype,
                "query": query,
                "metadata": meta(task),
            }
        )
    path = root / "MathVista/data/testmini-00000-of-00001.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(table), path)
    return path


def write_mathverse(root: Path) -> Path:
    """testmini parquet as on the hub (AI4Math/MathVerse): one image shown in several problem versions."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    shared = draw_image("ABC")
    choices = "Choices:\nA:30°\nB:40°\nC:50°\nD:60°"
    rows = [
        (
            "1",
            "1",
            "Text Dominant",
            f"In triangle ABC, angle A = 100°, angle C = 40°. Find angle B.\n{choices}",
            "B",
            "multi-choice",
            shared,
        ),
        ("2", "1", "Vision Only", "", "B", "multi-choice", shared),
        ("3", "2", "Text Lite", "Find the length of AB.", "5", "free-form", draw_image("5")),
        ("4", "3", "Vision Intensive", "Find x.", "2.5", "free-form", draw_image("x")),
        ("5", "4", "Vision Dominant", "Find the ratio.", "\\frac{3}{2}", "free-form", draw_image("r")),
        ("6", "5", "Text Dominant", f"Which option?\n{choices}", "Z", "multi-choice", draw_image("z")),
        ("7", "6", "Text Lite", "Explain.", "because", "essay", draw_image("e")),
    ]
    table = []
    for sid, pidx, version, q, answer, qtype, image in rows:
        instr = (
            "provide the correct option letter, e.g., A, B, C, D"
            if qtype == "multi-choice"
            else "provide the final value"
        )
        table.append(
            {
                "sample_index": sid,
                "problem_index": pidx,
                "problem_version": version,
                "question": q,
                "image": {"bytes": image, "path": f"image_{pidx}.png"},
                "answer": answer,
                "question_type": qtype,
                "metadata": {"split": "testmini", "source": "GeoQA", "subject": "Plane Geometry", "subfield": "Angle"},
                "query_wo": f"Please directly answer the question and {instr}.\nQuestion: {q}",
                "query_cot": f"Please first conduct reasoning, then answer the question and {instr}.\nQuestion: {q}",
            }
        )
    path = root / "MathVerse/testmini.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(table), path)
    return path


def write_mathvision(root: Path) -> Path:
    """data/test.jsonl with images/<id>.jpg beside data/, as in the MATH-Vision repository."""
    import json

    rows = [
        ("1", "<image1> Which angle is largest?", ["2", "4", "6", "8", "10"], "C", 2, "metric geometry - angle"),
        ("2", "<image1> How many squares?", [], "12", 1, "counting"),
        ("3", "<image1> What is the area?", [], "2.5", 3, "metric geometry - area"),
        ("4", "<image1> What is the diagonal?", [], "2\\sqrt{3}", 4, "metric geometry - length"),
        ("5", "<image1> Which one?", ["a", "b"], "F", 2, "logic"),
        ("6", "<image1> Missing picture", [], "3", 1, "counting"),
    ]
    (root / "MathVision/images").mkdir(parents=True, exist_ok=True)
    lines = []
    for pid, q, options, answer, level, subject in rows:
        if pid != "6":
            (root / f"MathVision/images/{pid}.jpg").write_bytes(draw_image(pid, "JPEG"))
        record = {"id": pid, "question": q, "options": options, "image": f"images/{pid}.jpg", "answer": answer}
        lines.append(json.dumps({**record, "solution": None, "level": level, "subject": subject}))
    path = root / "MathVision/data/test.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def write_generic(root: Path) -> Path:
    """The documented generic JSONL (src/mathse/generic_problem.schema.json), two images on one problem."""
    import json

    folder = root / "generic"
    (folder / "img").mkdir(parents=True, exist_ok=True)
    for name in ["a", "b", "c"]:
        (folder / f"img/{name}.png").write_bytes(draw_image(name))
    rows = [
        {"id": "g1", "question": "Sum of the two charts?", "images": ["img/a.png", "img/b.png"], "answer": "7"},
        {
            "id": "g2",
            "question": "Which shape?",
            "image": "img/c.png",
            "choices": ["circle", "square"],
            "answer": "square",
        },
        {
            "id": "g3",
            "question": "Coordinates?",
            "image": "img/c.png",
            "answer": "[1, 2]",
            "metadata": {"subject": "graphs"},
        },
        {"id": "g4", "question": "Ratio?", "image": "img/a.png", "answer": "0.25", "answer_type": "float"},
        {"id": "g5", "question": "Bad type", "image": "img/a.png", "answer": "1", "answer_type": "matrix"},
        {"id": "g6", "question": "Bad choices", "image": "img/a.png", "answer": "C", "choices": ["x", "y"]},
    ]
    path = folder / "problems.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n{not json\n")
    return path


def write_mathvl(root: Path) -> Path:
    import json

    folder = root / "MathVL-test"
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "images/1.png").write_bytes(draw_image("1"))
    rows = [
        {"question_id": 1, "question": "What is the perimeter?", "image_path": "images/1.png", "gt_answer": "14"},
        {
            "question_id": 2,
            "question": "Pick one",
            "image_path": "images/1.png",
            "options": ["3", "4"],
            "gt_answer": "B",
        },
    ]
    path = folder / "test.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


@pytest.fixture(scope="session")
def benchmark_files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("benchmarks")
    return {
        "mathvista": write_mathvista(root),
        "mathverse": write_mathverse(root),
        "mathvision": write_mathvision(root),
        "jsonl": write_generic(root),
        "mathvl": write_mathvl(root),
    }


PLANTED_KEY_ENV = "MATHSE_TEST_API_KEY"


def wait_for_server(proc: subprocess.Popen, base_url: str, log_path: Path, name: str, timeout: float) -> None:
    """Until an OpenAI-compatible server answers GET /models; its log's tail if it dies or never does."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
        try:
            if requests.get(f"{base_url}/models", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not start in {timeout:.0f} s:\n{log_path.read_text()[-4000:]}")
        time.sleep(0.5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def planted_key() -> str:
    """An API key that must never appear in any file the pipeline writes."""
    return "sk-mathse-PLANTED-" + secrets.token_hex(12)


@pytest.fixture(scope="session")
def served_model(tiny_model_dir, planted_key, tmp_path_factory):
    """`python -m mathse.generation.serve` on loopback serving the tiny model, requiring the planted key; stopped at
    the end.

    Yields (base_url, served model name, the server's log file).
    """
    port = free_port()
    log_path = tmp_path_factory.mktemp("serve") / "server.log"
    env = {**os.environ, PLANTED_KEY_ENV: planted_key, "PYTHONPATH": str(ROOT / "src")}
    cmd = [sys.executable, "-m", "mathse.generation.serve", str(tiny_model_dir), "--port", str(port)]
    cmd += ["--served-model-name", "tiny-teacher", "--api-key-env", PLANTED_KEY_ENV, "--threads", "1"]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_for_server(proc, base_url, log_path, "mathse.generation.serve", 120)
        yield base_url, "tiny-teacher", log_path
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
