"""Training and evaluating a generative ORM (the paper's fine-tuned VLM judge) on the embedded default.

Data (`orm_data` rule): labelled paths - corrupted reference traces (`orm.paths: corrupted`: per problem a right
path and wrong ones, a misread value at a random step that the later steps reason from, to a wrong answer, or an
arithmetic slip in the last step) or the round-0 model's own samples (`sampled`, as the paper) - at
`orm.train_correct_fraction`, labelled with the paper's JSON (status, error step, analysis, suggestion): right
paths by the answer check, wrong paths annotated by the teacher (`teacher.backend`: the programmatic teacher from
the reference trace, or GPT-4o as in the paper). Seed and pool problems train it; the held-out suite's problems
evaluate it. The ORM learns to answer the ORM prompt (`mathse.prompts.orm_prompt`) with that JSON, through the same
`train` code as the backbone: the whole prompt is the training row's `question` and the solver prompt version `raw`
passes it as is. Each path's final line alone, with its status only, is a curriculum for the comparison that
decides a verdict (`orm.final_line_examples`, `orm.final_line_steps`); the label-only rows are Table 5's other arm.

Evaluation (`orm_evaluate` rule), as the paper reports it: accuracy on correct paths, on wrong paths,
overall, and error-step agreement (wrong paths whose predicted step equals the labelled one); unparsable
output counts as a miss.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import numpy as np
import polars as pl

from mathse.artifacts import empty, read_table, write_table, write_text_atomic
from mathse.config import DataConfig, OrmConfig, TeacherConfig, TrainConfig
from mathse.judging.orm import INVALID, Verdict, judge_path, judge_table, model_judge_table
from mathse.judging.teacher import annotate, slip, teacher_model
from mathse.prompts import format_solution, orm_prompt

log = logging.getLogger(__name__)
_NUM_RE = re.compile(r"-?\d+")


_ARITH_RE = re.compile(r"^(.*?)(-?\d+) ([-+x]) (-?\d+) = (-?\d+)\.$")


def _misread(steps: list[str], answer: str, k: int, rng: np.random.Generator) -> tuple[list[str], str] | None:
    """Step k (0-based) states a wrong number, and the steps after it reason from that number as a model that
    misread it would: their arithmetic is redone with it, to a wrong final answer. Step k is then the only
    step that does not follow from the image and the steps before it (the model's own wrong paths look like
    this: a misread value, then right arithmetic). None when the path cannot be made so."""
    nums = list(_NUM_RE.finditer(steps[k]))
    if not nums or not answer.lstrip("-").isdigit():
        return None
    m, old = nums[-1], int(nums[-1].group())
    deltas = [d for d in (-2, -1, 1, 2) if old + d >= 0]  # a count or a length is never read as negative
    new = old + int(rng.choice(deltas))
    out = steps[:k] + [steps[k][: m.start()] + str(new) + steps[k][m.end() :]]
    changed = {old: new}
    for step in steps[k + 1 :]:
        a = _ARITH_RE.match(step)
        if not a or not changed.keys() & {int(a.group(2)), int(a.group(4))}:
            out.append(step)
            continue
        head, x, op, y, z = a.group(1), int(a.group(2)), a.group(3), int(a.group(4)), int(a.group(5))
        # One operand stands for the misread value (the first, where both are equal).
        x, y = (changed.pop(x), y) if x in changed else (x, changed.pop(y))
        if op == "-" and x < y:  # the larger value minus the smaller, as the reference writes it
            x, y = y, x
        result = x + y if op == "+" else x - y if op == "-" else x * y
        changed[z] = result
        out.append(f"{head}{x} {op} {y} = {result}.")
    final = changed.get(int(answer))  # None: the misread value never reached the answer
    if final is None or final == int(answer):
        return None
    return out, str(final)


def _slip(steps: list[str], answer: str) -> tuple[list[str], str] | None:
    """The teacher's slip in the last step; None where that step states no result (the path would contradict
    itself)."""
    return slip(steps, answer) if answer.lstrip("-").isdigit() and "= " in steps[-1] else None


def _wrong_path(steps: list[str], answer: str, rng: np.random.Generator) -> tuple[list[str], str] | None:
    # Misread values dominate real mistakes on charts; a slip in the last step is the rest.
    made = None
    if rng.random() >= 0.3:
        made = _misread(steps, answer, int(rng.integers(len(steps))), rng)
    return made or _slip(steps, answer)


def orm_paths(
    problems: pl.DataFrame, correct_fraction: float, seed: int, stream: int, per_problem: int = 1
) -> list[dict]:
    """`per_problem` paths per problem (with the problem's fields and `sample_idx`), exactly a
    `correct_fraction` share of them correct, spread evenly over the problems (so that a problem's paths
    contrast a right one with wrong ones); a problem's wrong paths differ from each other where they can."""
    problems = problems.filter(pl.col("solution_steps").list.len() > 0)
    n_correct = round(correct_fraction * problems.height * per_problem)
    order = np.random.default_rng([seed, 4099, stream]).permutation(problems.height)
    n_right = np.empty(problems.height, dtype=int)
    n_right[order] = [n_correct // problems.height + (t < n_correct % problems.height) for t in range(problems.height)]
    paths = []
    for i, p in enumerate(problems.iter_rows(named=True)):
        steps, answer = p["solution_steps"], p["answer"]
        right = format_solution(steps, answer)
        seen = {right}
        for j in range(per_problem):
            response = right
            if j >= n_right[i]:
                # Stream (seed, stream, i) for the first path keeps one path per problem as it was.
                rng = np.random.default_rng([seed, 4099, stream, i] + ([j] if j else []))
                for _ in range(8):
                    made = _wrong_path(steps, answer, rng)
                    response = format_solution(*made) if made else right
                    if response not in seen:
                        break
                seen.add(response)
            paths.append({**p, "response": response, "sample_idx": j})
    return paths


def sampled_paths(rollouts: pl.DataFrame, problems: pl.DataFrame, correct_fraction: float, seed: int, stream: int):
    """The model's own distinct sampled paths (rollout rows), as many as keep exactly a `correct_fraction`
    share of right answers (the scarcer kind all kept, the other drawn at random), with the problems' fields."""
    keyed = rollouts.select("problem_id", "sample_idx", "response").unique(["problem_id", "response"], keep="first")
    keyed = keyed.sort("problem_id", "sample_idx").join(problems, on="problem_id", how="inner")
    right = judge_table(keyed.select("problem_id", "response"), problems)["answer_correct"]
    n_right, n_wrong = int(right.sum()), int((~right).sum())
    if not 0 < correct_fraction < 1:
        n = n_right if correct_fraction == 1 else n_wrong
    else:
        n = int(min(n_right / correct_fraction, n_wrong / (1 - correct_fraction)))
    want = {True: round(correct_fraction * n), False: n - round(correct_fraction * n)}
    rng = np.random.default_rng([seed, 4099, stream])
    keep = np.zeros(keyed.height, dtype=bool)
    for kind, k in want.items():
        rows = np.flatnonzero(right.to_numpy() == kind)
        keep[rng.choice(rows, size=k, replace=False)] = True
    log.info("sampled paths: %d right, %d wrong; kept %d right and %d wrong", n_right, n_wrong, want[True], want[False])
    return keyed.filter(pl.Series(keep)).to_dicts()


def orm_corpus(data: DataConfig, prompt_version: str, n: int = 300) -> list[str]:
    """Text for a tiny ORM's tokenizer: its prompt and the programmatic teacher's verdicts on problems of
    the generator (not the run's own), so that the JSON keys and the analysis phrases are words, not letters."""
    from mathse.problems.data import make_problem

    rows = []
    for i in range(n):
        _, p = make_problem(54321, "seed", i, data)
        rows.append({"problem_id": str(i), "question": p.question, "images": [], "answer": str(p.answer),
                     "precision": None, "solution_steps": p.steps})  # fmt: skip
    texts = []
    for path in orm_paths(pl.DataFrame(rows), 0.5, 0, 0):
        _, _, v = judge_path(path["response"], path["answer"], path["solution_steps"])
        texts += [orm_prompt(path["question"], path["answer"], path["response"], prompt_version), v.to_json()]
    # Every number the problems can hold, often enough to become a token where digits are not split.
    return texts + [" ".join(str(v) for v in range(-10, 4 * data.max_value + 10))] * 20


def label_paths(paths: list[dict], labels: list[Verdict | str], where: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Labelled paths (orm_example rows) and the paths whose annotation was unusable (quarantine rows)."""
    rows, bad = [], []
    for i, (p, v) in enumerate(zip(paths, labels, strict=True)):
        if isinstance(v, str):
            bad.append({"file": where, "row": i, "problem_id": p["problem_id"], "field": "judgment_json", "reason": v})
            continue
        rows.append(
            {
                **{k: p[k] for k in ("problem_id", "sample_idx", "question", "images", "answer", "precision")},
                "response": p["response"],
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
    "sample_idx": pl.Int64,
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
    binary_out: str | None = None,
    rollouts: tuple[list[str], list[str]] | None = None,
) -> None:
    """The orm_data rule: ORM training rows (train schema) and held-out labelled paths (orm_example).

    Correct paths are labelled by the answer check; wrong paths get the teacher's annotation (error step,
    analysis, suggestion). Paths whose annotation is unusable are quarantined, not trained on.
    `binary_out`: the same rows with the status-only verdict (`{"status": "WRONG"}`), for the label-only ORM.
    `rollouts` (orm.paths: sampled): the model's own paths on the training and on the held-out problems
    (rollout tables), instead of corrupted reference traces.
    """
    teacher = teacher or TeacherConfig()
    train_problems = pl.concat([read_table(p, "problem") for p in train_problem_paths])
    eval_problems = pl.concat([read_table(p, "problem") for p in eval_problem_paths])
    if rollouts is None:
        train_paths = orm_paths(train_problems, cfg.train_correct_fraction, seed, 0, cfg.paths_per_problem)
        eval_paths = orm_paths(eval_problems, cfg.train_correct_fraction, seed, 1)
    else:
        train_rollouts, eval_rollouts = (pl.concat([read_table(p, "rollout") for p in ps]) for ps in rollouts)
        train_paths = sampled_paths(train_rollouts, train_problems, cfg.train_correct_fraction, seed, 0)
        eval_paths = sampled_paths(eval_rollouts, eval_problems, cfg.train_correct_fraction, seed, 1)
    # One annotation pass over both sets, so that one cost record covers the rule.
    labels = annotate(train_paths + eval_paths, teacher, seed=seed, stream=0, cost_path=cost_out)
    train_ex, train_bad = label_paths(train_paths, labels[: len(train_paths)], "orm train paths")
    eval_ex, eval_bad = label_paths(eval_paths, labels[len(train_paths) :], "orm held-out paths")
    train = train_ex.select(
        # One row per path: the path index keeps train's per-problem prompt cache apart.
        problem_id=pl.col("problem_id") + "#orm" + pl.col("sample_idx").cast(pl.String),
        question=pl.struct("question", "answer", "response").map_elements(
            lambda r: orm_prompt(r["question"], r["answer"], r["response"], cfg.prompt_version),
            return_dtype=pl.String,
        ),
        images="images",
        response="judgment_json",
        origin=pl.lit("orm"),
        round_added=pl.lit(0, pl.Int64),
        sample_idx="sample_idx",
        model=pl.lit(teacher_model(teacher)),  # who wrote the labels
        backend=pl.lit(teacher.backend),
        prompt_version=pl.lit(cfg.prompt_version),
    )
    status_only = pl.concat_str(pl.lit('{"status": "'), train_ex["status"], pl.lit('"}'))
    final = final_line_rows(train, train_ex, status_only, cfg) if cfg.final_line_examples else train.clear()
    write_table(pl.concat([train, final]), train_out, "train")
    if binary_out:
        # Table 5's label-only arm: the same paths and prompts, the verdict without step and analysis.
        write_table(pl.concat([train.with_columns(response=status_only), final]), binary_out, "train")
    write_table(eval_ex, eval_out, "orm_example")
    bad = pl.concat([train_bad, eval_bad])
    if quarantine_out:
        write_table(bad, quarantine_out, "quarantine")
    for name, ex in (("train", train_ex), ("eval", eval_ex)):
        log.info("ORM %s data: %d paths, %d correct", name, ex.height, int((ex["status"] == "CORRECT").sum()))
    if bad.height:
        log.warning("ORM data: %d paths quarantined (unusable teacher annotation); see %s", bad.height, quarantine_out)


def final_line_rows(train: pl.DataFrame, ex: pl.DataFrame, status_only: pl.Series, cfg: OrmConfig) -> pl.DataFrame:
    """orm.final_line_examples: each training path's final line alone under the ORM prompt (no question, no
    steps), answered with its status only - the comparison that decides a verdict, in a few tokens."""
    final = ex.select(
        question=pl.struct("answer", "response").map_elements(
            lambda r: orm_prompt("", r["answer"], r["response"].rstrip().rsplit("\n", 1)[-1], cfg.prompt_version),
            return_dtype=pl.String,
        )
    )
    return train.with_columns(
        problem_id=pl.col("problem_id") + "#final", question=final["question"], response=status_only
    )


def train_orm(kwargs: dict, cfg: TrainConfig, final_line_steps: int = 0, log_path: str | None = None, *,
              final_line_batch_size: int) -> dict:  # fmt: skip
    """The orm_train rule: `mathse.training.train.launch` on the ORM's rows (`kwargs`: train()'s arguments). With
    `final_line_steps`, first that many steps (of `final_line_batch_size` rows) on the final-line rows alone, then
    the whole set from those weights: a small ORM learns the comparison on a few tokens before it reads paths."""
    from mathse.modeling import write_marker
    from mathse.training.metrics import METRICS_FILE
    from mathse.training.train import launch

    kwargs = {**kwargs, "job": kwargs.get("job") or "orm"}  # its metrics' job, not a round's
    if not final_line_steps:
        return launch(kwargs, cfg, log_path)
    out = Path(kwargs["out_dir"])
    stage, rows = out.with_name(out.name + ".final_lines"), out.with_name(out.name + ".final_lines.parquet")
    table = read_table(kwargs["train_path"], "train")
    write_table(table.filter(pl.col("problem_id").str.ends_with("#final")), rows, "train")
    first = cfg.model_copy(update={"min_steps": final_line_steps, "max_steps": final_line_steps,
                                   "per_device_train_batch_size": final_line_batch_size})  # fmt: skip
    log.info("ORM curriculum: %d steps on final lines, then the whole set", final_line_steps)
    job = kwargs["job"]  # the curriculum is a job of its own in the metrics and the trackers (steps from 1)
    watch = {"job": f"{job}_final_lines", "run_name": f"{kwargs.get('run_name') or out}/final_lines",
             "logging_dir": f"{kwargs.get('logging_dir') or f'{out}.tensorboard'}/final_lines"}  # fmt: skip
    warm = launch({**kwargs, "train_path": str(rows), "out_dir": str(stage), **watch}, first, log_path)
    info = launch({**kwargs, "init_weights": str(stage)}, cfg, log_path)
    stages = [read_table(d / METRICS_FILE, "train_metrics") for d in (stage, out)]
    write_table(pl.concat(stages), out / METRICS_FILE, "train_metrics")  # both stages' steps, in order
    info |= {"init": "base", "final_line_steps": final_line_steps,
             "train_seconds": round(warm["train_seconds"] + info["train_seconds"], 2)}  # fmt: skip
    write_marker(out, info)
    shutil.rmtree(stage)
    rows.unlink()
    return info


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


def table5(evals: dict[str, str], markers: dict[str, str], out_path: str) -> str:
    """The paper's Table 5: each ORM arm (`evals`: arm -> orm_eval parquet, `markers`: arm -> its training
    marker) on the same held-out paths, with its training time."""
    from mathse.modeling import TRAINED_MARKER

    head = (
        "| ORM | paths | correct paths | wrong paths | overall | error step | unparsable | train s |\n"
        "|---|---|---|---|---|---|---|---|\n"
    )
    lines, paths = [], None
    for arm, path in evals.items():
        out = read_table(path, "orm_eval")
        keys = out.select("problem_id", "response")
        if paths is not None and not keys.equals(paths):
            raise ValueError(f"{path}: the {arm} ORM was evaluated on other paths than the first arm")
        paths = keys
        m = orm_metrics(out)
        seconds = json.loads((Path(markers[arm]) / TRAINED_MARKER).read_text())["train_seconds"]
        step = "-" if arm == "binary" else f"{100 * m['error_step_agreement']:.1f}"
        n = m["n_correct_paths"] + m["n_wrong_paths"]
        lines.append(
            f"| {ARM_NAMES.get(arm, arm)} | {n} ({m['n_correct_paths']} correct) | {100 * m['acc_correct']:.1f} | "
            f"{100 * m['acc_wrong']:.1f} | {100 * m['acc_overall']:.1f} | {step} | {100 * m['invalid']:.1f} | "
            f"{seconds:.0f} |\n"
        )
    text = head + "".join(lines)
    write_text_atomic(text, out_path)
    log.info("ORM arms:\n%s", text)
    return text


ARM_NAMES = {"binary": "status only (label)", "full": "status, error step and analysis"}


def orm_table(m: dict) -> str:
    head = "| paths | correct paths | wrong paths | overall | error step | unparsable |\n|---|---|---|---|---|---|\n"
    n = m["n_correct_paths"] + m["n_wrong_paths"]
    return head + (
        f"| {n} ({m['n_correct_paths']} correct) | {100 * m['acc_correct']:.1f} | {100 * m['acc_wrong']:.1f} | "
        f"{100 * m['acc_overall']:.1f} | {100 * m['error_step_agreement']:.1f} | {100 * m['invalid']:.1f} |\n"
    )
