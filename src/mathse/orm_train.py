"""Training and evaluating a generative ORM (the paper's fine-tuned VLM judge) on the embedded default.

Data (`orm_data` rule): for each problem, a correct path or a wrong path - a misread value at a random
step carried to a wrong answer, or an arithmetic slip in the last step - labelled with the paper's JSON
(status, error step, analysis, suggestion): correct paths by the answer check, wrong paths annotated by the
teacher (`teacher.backend`: the programmatic teacher from the reference trace, or GPT-4o as in the paper).
Seed and pool problems train it; the held-out suite's problems evaluate it. The ORM learns to answer the
ORM prompt (`mathse.prompts.orm_prompt`) with that JSON, through the same `train` code as the backbone:
the whole prompt is the training row's `question` and the solver prompt version `raw` passes it as is.

Evaluation (`orm_evaluate` rule), as the paper reports it: accuracy on correct paths, on wrong paths,
overall, and error-step agreement (wrong paths whose predicted step equals the labelled one); unparsable
output counts as a miss.
"""

from __future__ import annotations

import logging
import re

import numpy as np
import polars as pl

from mathse.artifacts import empty, read_table, write_table, write_text_atomic
from mathse.config import OrmConfig, TeacherConfig
from mathse.orm import INVALID, Verdict, model_judge_table
from mathse.prompts import format_solution, orm_prompt
from mathse.teacher import annotate, teacher_model

log = logging.getLogger(__name__)
_NUM_RE = re.compile(r"-?\d+")


def _misread(steps: list[str], answer: str, k: int, rng: np.random.Generator) -> tuple[list[str], str] | None:
    """Step k (0-based) states a wrong number; the reasoning carries on to a wrong final answer."""
    nums = list(_NUM_RE.finditer(steps[k]))
    if not nums or not answer.lstrip("-").isdigit():
        return None
    m = nums[-1]
    delta = int(rng.choice([-2, -1, 1, 2]))
    wrong_step = steps[k][: m.start()] + str(int(m.group()) + delta) + steps[k][m.end() :]
    return steps[:k] + [wrong_step] + steps[k + 1 :], str(int(answer) + delta)


def _slip(steps: list[str], answer: str) -> tuple[list[str], str] | None:
    if not answer.lstrip("-").isdigit():
        return None
    head, sep, _ = steps[-1].rpartition("= ")
    if not sep:
        return None
    wrong = str(int(answer) + 1)
    return steps[:-1] + [f"{head}{sep}{wrong}."], wrong


def orm_paths(problems: pl.DataFrame, correct_fraction: float, seed: int, stream: int) -> list[dict]:
    """One path per problem (with the problem's fields), exactly a `correct_fraction` share of them correct."""
    problems = problems.filter(pl.col("solution_steps").list.len() > 0)
    n_correct = round(correct_fraction * problems.height)
    order = np.random.default_rng([seed, 4099, stream]).permutation(problems.height)
    correct = set(order[:n_correct].tolist())
    paths = []
    for i, p in enumerate(problems.iter_rows(named=True)):
        steps, answer = p["solution_steps"], p["answer"]
        rng = np.random.default_rng([seed, 4099, stream, i])
        made = None
        if i not in correct:
            # Misread values dominate real mistakes on charts; a slip in the last step is the rest.
            if rng.random() >= 0.3:
                made = _misread(steps, answer, int(rng.integers(len(steps))), rng)
            made = made or _slip(steps, answer)
        paths.append({**p, "response": format_solution(*made) if made else format_solution(steps, answer)})
    return paths


def label_paths(paths: list[dict], labels: list[Verdict | str], where: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Labelled paths (orm_example rows) and the paths whose annotation was unusable (quarantine rows)."""
    rows, bad = [], []
    for i, (p, v) in enumerate(zip(paths, labels, strict=True)):
        if isinstance(v, str):
            bad.append({"file": where, "row": i, "problem_id": p["problem_id"], "field": "judgment_json", "reason": v})
            continue
        rows.append(
            {
                **{k: p[k] for k in ("problem_id", "question", "images", "answer", "precision", "response")},
                "status": v.status,
                "error_step": v.error_step,
                "judgment_json": v.to_json(),
            }
        )
    return pl.DataFrame(rows, schema=ORM_EXAMPLE_SCHEMA), pl.DataFrame(bad, schema=empty("quarantine").schema)


def orm_examples(
    problems: pl.DataFrame, correct_fraction: float, seed: int, stream: int, teacher: TeacherConfig | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Paths labelled by the teacher (default: the programmatic one), and the quarantined ones."""
    paths = orm_paths(problems, correct_fraction, seed, stream)
    labels = annotate(paths, teacher or TeacherConfig(), seed=seed, stream=stream)
    return label_paths(paths, labels, f"orm paths (stream {stream})")


ORM_EXAMPLE_SCHEMA = {
    "problem_id": pl.String,
    "question": pl.String,
    "images": pl.List(pl.String),
    "answer": pl.String,
    "precision": pl.Int64,
    "response": pl.String,
    "status": pl.String,
    "error_step": pl.Int64,
    "judgment_json": pl.String,
}


def build_orm_data(
    train_problem_paths: list[str],
    eval_problem_paths: list[str],
    train_out: str,
    eval_out: str,
    cfg: OrmConfig,
    *,
    seed: int,
    teacher: TeacherConfig | None = None,
    cost_out: str | None = None,
    quarantine_out: str | None = None,
) -> None:
    """The orm_data rule: ORM training rows (train schema) and held-out labelled paths (orm_example).

    Correct paths are labelled by the answer check; wrong paths get the teacher's annotation (error step,
    analysis, suggestion). Paths whose annotation is unusable are quarantined, not trained on.
    """
    teacher = teacher or TeacherConfig()
    train_problems = pl.concat([read_table(p, "problem") for p in train_problem_paths])
    eval_problems = pl.concat([read_table(p, "problem") for p in eval_problem_paths])
    train_paths = orm_paths(train_problems, cfg.train_correct_fraction, seed, 0)
    eval_paths = orm_paths(eval_problems, cfg.train_correct_fraction, seed, 1)
    # One annotation pass over both sets, so that one cost record covers the rule.
    labels = annotate(train_paths + eval_paths, teacher, seed=seed, stream=0, cost_path=cost_out)
    train_ex, train_bad = label_paths(train_paths, labels[: len(train_paths)], "orm train paths")
    eval_ex, eval_bad = label_paths(eval_paths, labels[len(train_paths) :], "orm held-out paths")
    train = train_ex.select(
        # One row per path: the path index keeps train's per-problem prompt cache apart.
        problem_id=pl.col("problem_id") + "#orm",
        question=pl.struct("question", "answer", "response").map_elements(
            lambda r: orm_prompt(r["question"], r["answer"], r["response"], cfg.prompt_version),
            return_dtype=pl.String,
        ),
        images="images",
        response="judgment_json",
        origin=pl.lit("orm"),
        round_added=pl.lit(0, pl.Int64),
        sample_idx=pl.lit(0, pl.Int64),
        model=pl.lit(teacher_model(teacher)),  # who wrote the labels
        backend=pl.lit(teacher.backend),
        prompt_version=pl.lit(cfg.prompt_version),
    )
    write_table(train, train_out, "train")
    write_table(eval_ex, eval_out, "orm_example")
    bad = pl.concat([train_bad, eval_bad])
    if quarantine_out:
        write_table(bad, quarantine_out, "quarantine")
    for name, ex in (("train", train_ex), ("eval", eval_ex)):
        log.info("ORM %s data: %d paths, %d correct", name, ex.height, int((ex["status"] == "CORRECT").sum()))
    if bad.height:
        log.warning("ORM data: %d paths quarantined (unusable teacher annotation); see %s", bad.height, quarantine_out)


def evaluate_orm(
    eval_path: str, base_path: str, weights: str | None, out_path: str, table_path: str, cfg: OrmConfig
) -> pl.DataFrame:
    """The orm_evaluate rule: the ORM's verdicts on held-out labelled paths, and the paper's metrics."""
    ex = read_table(eval_path, "orm_example")
    problems = ex.select("problem_id", "question", "images", "answer", "precision").unique("problem_id")
    hf = cfg.hf.model_copy(update={"path": base_path, "weights": weights})
    judge_cfg = cfg.model_copy(update={"backend": "model", "transport": "hf", "hf": hf})
    verdicts, _ = model_judge_table(ex.select("problem_id", "response"), problems, judge_cfg)
    out = ex.select("problem_id", "response", label_status="status", label_step="error_step").with_columns(
        pred_status=verdicts["status"], pred_step=verdicts["error_step"], raw=verdicts["judgment_json"]
    )
    write_table(out, out_path, "orm_eval")
    metrics = orm_metrics(out)
    write_text_atomic(orm_table(metrics), table_path)
    log.info("ORM evaluation:\n%s", orm_table(metrics))
    return out


def orm_metrics(out: pl.DataFrame) -> dict[str, float | int]:
    right = out["label_status"] == out["pred_status"]
    correct, wrong = out["label_status"] == "CORRECT", out["label_status"] == "WRONG"
    step_ok = wrong & (out["pred_status"] == "WRONG") & (out["pred_step"] == out["label_step"]).fill_null(False)

    def share(mask: pl.Series, of: pl.Series) -> float:
        return float((mask & of).sum() / of.sum()) if of.sum() else float("nan")

    return {
        "n_correct_paths": int(correct.sum()),
        "n_wrong_paths": int(wrong.sum()),
        "acc_correct": share(right, correct),
        "acc_wrong": share(right, wrong),
        "acc_overall": float(right.mean()) if out.height else float("nan"),
        "error_step_agreement": share(step_ok, wrong),
        "invalid": float((out["pred_status"] == INVALID).mean()) if out.height else float("nan"),
    }


def orm_table(m: dict) -> str:
    head = "| paths | correct paths | wrong paths | overall | error step | unparsable |\n|---|---|---|---|---|---|\n"
    n = m["n_correct_paths"] + m["n_wrong_paths"]
    return head + (
        f"| {n} ({m['n_correct_paths']} correct) | {100 * m['acc_correct']:.1f} | {100 * m['acc_wrong']:.1f} | "
        f"{100 * m['acc_overall']:.1f} | {100 * m['error_step_agreement']:.1f} | {100 * m['invalid']:.1f} |\n"
    )
