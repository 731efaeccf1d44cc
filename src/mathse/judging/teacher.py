"""The teacher: distillation (round 0), reflections on wrong paths, and error annotations for ORM data.

Two backends (`teacher.backend`). `openai` asks a model behind an OpenAI-compatible endpoint (GPT-4o in the
paper) with the versioned prompts of `mathse.prompts`, through `mathse.judging.api` (retries, cache, cost).
`programmatic` stands in for GPT-4o on procedural problems, whose reference traces it can read. Like a real teacher
it is not perfect: with probability `error_rate` it slips in the last arithmetic step, and without the
ORM's feedback it has to guess where a wrong path went wrong (it guesses a step at random, keeps the path
before it and rewrites from there), so a guess past the real error keeps the mistake. The ORM re-checks
every teacher output; only the correct ones are trained on.
"""

from __future__ import annotations

import logging
import zlib

import numpy as np
import polars as pl

from mathse.artifacts import read_table, write_table
from mathse.config import OrmConfig, ReflectionConfig, TeacherConfig, VllmConfig
from mathse.judging.api import ChatClient, public_url, write_cost
from mathse.judging.grading import extract_answer
from mathse.judging.orm.model import model_judge_table
from mathse.judging.orm.rule import find_error_step, judge_path, judge_table
from mathse.judging.orm.verdict import Verdict, VerdictParseError, parse_verdict
from mathse.prompts import (
    annotate_prompt,
    critique_prompt,
    distill_prompt,
    format_solution,
    parse_critique,
    parse_steps,
    reflect_prompt,
)

log = logging.getLogger(__name__)
TEACHER_NAME = "programmatic-teacher"
DISTILL, REFLECT, ANNOTATE, CRITIQUE = 0, 1, 2, 3  # seed-stream tags
_PATH_SCHEMA = {"problem_id": pl.String, "response": pl.String}


def _rng(seed: int, stream: int, *key: int) -> np.random.Generator:
    return np.random.default_rng([seed, 7919, stream, *key])


def slip(steps: list[str], answer: str) -> tuple[list[str], str]:
    """An arithmetic slip in the last step: the result is off by one, and so is the stated answer (an integer)."""
    wrong = str(int(answer) + 1)
    last = steps[-1]
    head, sep, _ = last.rpartition("= ")
    return steps[:-1] + [f"{head}{sep}{wrong}." if sep else last], wrong


def solve(steps: list[str], answer: str, rng: np.random.Generator, error_rate: float) -> str:
    if error_rate > 0 and rng.random() < error_rate and answer.lstrip("-").isdigit():
        steps, answer = slip(steps, answer)
    return format_solution(steps, answer)


def question_text(problem: dict) -> str:
    choices = problem.get("choices") or []
    return problem["question"] + (f"\nChoices: {'; '.join(choices)}" if choices else "")


def teacher_model(cfg: TeacherConfig) -> str:
    return cfg.openai.model if cfg.backend == "openai" else TEACHER_NAME


def _request_seed(seed: int, stream: int, *key: int) -> int:
    # Part of the request body, hence of the cache key: the same run asks the same questions.
    return int(np.random.SeedSequence([seed, 7919, stream, *key]).generate_state(1)[0] & 0x7FFFFFFF)


def write_teacher_cost(client: ChatClient | None, path: str | None, cfg: TeacherConfig, rule: str, round_idx: int):
    if path is None:
        return
    endpoint = client.public_url if client else ""
    write_cost(
        client.usage if client else None,
        path,
        round_idx=round_idx,
        rule=rule,
        backend=cfg.backend,
        model=teacher_model(cfg),
        endpoint=endpoint,
    )


def distill(
    seed_path: str | list[str], out_path: str, cfg: TeacherConfig, seed: int, cost_path: str | None = None
) -> pl.DataFrame:
    """The distill rule: a teacher solution for every seed problem (and pool problem, with teacher.distill_pool,
    appended after them so that the seed part's solutions stay the same), with the ORM's verdict on it."""
    paths = [seed_path] if isinstance(seed_path, str) else list(seed_path)
    problems = pl.concat([read_table(p, "problem") for p in paths])
    seed_path = ", ".join(paths)
    client = ChatClient(cfg.openai) if cfg.backend == "openai" else None
    if client is not None:
        log.info("teacher: %s at %s", cfg.openai.model, public_url(client.url))
        bodies = [
            client.body(
                distill_prompt(question_text(r), cfg.prompt_version),
                r["images"],
                seed=_request_seed(seed, DISTILL, zlib.crc32(r["problem_id"].encode())),
            )
            for r in problems.iter_rows(named=True)
        ]
        try:
            responses = [c.text for c in client.complete_all(bodies, desc="distill")]
        finally:
            write_teacher_cost(client, cost_path, cfg, "distill", 0)
    else:
        responses = []
        for i, r in enumerate(problems.iter_rows(named=True)):
            if not r["solution_steps"]:
                raise ValueError(
                    f"{seed_path}: row {i} ({r['problem_id']}): the programmatic teacher needs solution_steps"
                )
            responses.append(solve(r["solution_steps"], r["answer"], _rng(seed, DISTILL, i), cfg.error_rate))
        write_teacher_cost(None, cost_path, cfg, "distill", 0)
    table = pl.DataFrame({"problem_id": problems["problem_id"], "response": responses}, schema=_PATH_SCHEMA)
    verdicts = judge_table(table, problems)
    out = table.with_columns(
        status=verdicts["status"],
        check=verdicts["check"],
        round=pl.lit(0),
        model=pl.lit(teacher_model(cfg)),
        backend=pl.lit(cfg.backend),
        prompt_version=pl.lit(cfg.prompt_version),
        seed=pl.lit(seed),
    )
    n_ok = int((out["status"] == "CORRECT").sum())
    log.info("distilled %d seed problems: %d correct, %d rejected by the ORM", out.height, n_ok, out.height - n_ok)
    return write_table(out, out_path, "distilled")


def rewrite(
    wrong: str,
    reference: list[str],
    answer: str,
    error_step: int | None,
    rng: np.random.Generator,
    error_rate: float,
) -> str:
    """Keep the wrong path up to the step before the error and redo the rest from the reference trace."""
    n = len(reference)
    steps = parse_steps(wrong)
    if error_step is None:  # no feedback: guess where it went wrong
        error_step = int(rng.integers(1, n + 1))
        true_step, _ = find_error_step(steps, reference)
        if error_step > true_step:
            # Reasoning on from a kept wrong step carries the mistake to the end: the answer stays wrong.
            return format_solution(steps or reference[:1], extract_answer(wrong) or "unknown")
    keep = steps[: max(0, min(error_step - 1, n))]
    return solve(keep + reference[len(keep) :], answer, rng, error_rate)


def reflect(
    judgment_paths: list[str],
    problem_paths: list[str],
    out_path: str,
    teacher: TeacherConfig,
    cfg: ReflectionConfig,
    *,
    round_idx: int,
    seed: int,
    cost_path: str | None = None,
    orm: OrmConfig | None = None,
    backbone: str | None = None,
    vllm_cfg: VllmConfig | None = None,
) -> pl.DataFrame:
    """The reflect rule: rewrite the wrong paths of problems that stayed unsolved, then re-judge them with the
    configured judge (`orm`, the rule ORM when None), as the paper's ORM re-checks each rewrite."""
    problems = pl.concat([read_table(p, "problem") for p in problem_paths]).unique("problem_id", keep="first")
    judged = pl.concat([read_table(p, "judgment") for p in judgment_paths])
    solved = judged.filter(pl.col("status") == "CORRECT").select("round", "problem_id").unique()
    wrong = (
        judged.filter(pl.col("status") == "WRONG")
        .join(solved, on=["round", "problem_id"], how="anti")
        .sort("problem_id", "round", "sample_idx")
        .group_by("problem_id", maintain_order=True)
        .head(cfg.max_per_problem)
    )
    ref = {r["problem_id"]: r for r in problems.iter_rows(named=True)}
    client = ChatClient(teacher.openai) if teacher.backend == "openai" else None
    rows, bodies = [], []
    critiques = _teacher_critiques(client, wrong, ref, teacher, seed, round_idx) if cfg.feedback == "teacher" else {}
    for i, r in enumerate(wrong.iter_rows(named=True)):
        p = ref[r["problem_id"]]
        # The feedback the teacher works from: the ORM's, its own critique, or none.
        step, analysis = {"orm": (r["error_step"], r["error_analysis"]), "none": (None, None)}.get(
            cfg.feedback, critiques.get(i, (None, None))
        )
        key = (round_idx, r["round"], zlib.crc32(r["problem_id"].encode()), r["sample_idx"])
        if client is not None:
            prompt = reflect_prompt(
                question_text(p),
                r["response"],
                step,
                analysis,
                teacher.prompt_version,
                feedback=cfg.feedback != "none",
            )
            bodies.append(client.body(prompt, p["images"], seed=_request_seed(seed, REFLECT, *key)))
            response = None
        else:
            rng = _rng(seed, REFLECT, *key)
            response = rewrite(r["response"], p["solution_steps"], p["answer"], step, rng, teacher.error_rate)
        rows.append(
            {
                "problem_id": r["problem_id"],
                "sample_idx": r["sample_idx"],
                "source_round": r["round"],
                "wrong_response": r["response"],
                "error_step": r["error_step"],
                "feedback": cfg.feedback,
                "response": response,
            }
        )
    if client is not None:
        try:
            texts = [c.text for c in client.complete_all(bodies, desc=f"reflect round {round_idx}")]
        finally:
            write_teacher_cost(client, cost_path, teacher, "reflect", round_idx)
        for row, text in zip(rows, texts, strict=True):
            row["response"] = text
    else:
        write_teacher_cost(None, cost_path, teacher, "reflect", round_idx)
    table = pl.DataFrame(
        rows,
        schema={
            "problem_id": pl.String,
            "sample_idx": pl.Int64,
            "source_round": pl.Int64,
            "wrong_response": pl.String,
            "error_step": pl.Int64,
            "feedback": pl.String,
            "response": pl.String,
        },
    )
    paths = table.select("problem_id", "response")
    if orm is not None and orm.backend == "model":
        verdicts, _ = model_judge_table(paths, problems, orm, backbone, vllm_cfg)
    else:
        verdicts = judge_table(paths, problems)
    out = table.with_columns(
        status=verdicts["status"],
        judge=verdicts["judge"],
        answer_correct=verdicts["answer_correct"],
        check=verdicts["check"],
        accepted=verdicts["status"] == "CORRECT",
        round=pl.lit(round_idx, pl.Int64),
        model=pl.lit(teacher_model(teacher)),
        backend=pl.lit(teacher.backend),
        prompt_version=pl.lit(teacher.prompt_version),
        seed=pl.lit(seed, pl.Int64),
    )
    n_ok = int(out["accepted"].sum()) if out.height else 0
    n_mv = int(out["answer_correct"].sum()) if out.height else 0
    judge = out["judge"][0] if out.height else "-"
    log.info(
        "reflected %d wrong paths: %d accepted by the re-check (%s); math-verify says %d correct",
        out.height,
        n_ok,
        judge,
        n_mv,
    )
    return write_table(out, out_path, "reflection")


def _teacher_critiques(
    client: ChatClient | None, wrong: pl.DataFrame, ref: dict, teacher: TeacherConfig, seed: int, round_idx: int
) -> dict[int, tuple[int | None, str | None]]:
    """reflection.feedback: teacher - the teacher locates the error of each wrong path itself (row index ->
    (error_step, error_analysis)). The programmatic teacher compares the path with its own reference trace,
    which finds the same step as the rule ORM: with it, `teacher` and `orm` feedback agree by construction."""
    if client is None:
        return {
            i: find_error_step(parse_steps(r["response"]), ref[r["problem_id"]]["solution_steps"] or [])
            for i, r in enumerate(wrong.iter_rows(named=True))
        }
    bodies = []
    for r in wrong.iter_rows(named=True):
        key = (round_idx, r["round"], zlib.crc32(r["problem_id"].encode()), r["sample_idx"])
        prompt = critique_prompt(question_text(ref[r["problem_id"]]), r["response"], teacher.prompt_version)
        bodies.append(client.body(prompt, ref[r["problem_id"]]["images"], seed=_request_seed(seed, CRITIQUE, *key)))
    texts = [c.text for c in client.complete_all(bodies, desc=f"critique round {round_idx}")]
    return {i: parse_critique(text) for i, text in enumerate(texts)}


def annotate(
    paths: list[dict], cfg: TeacherConfig, *, seed: int, stream: int, cost_path: str | None = None
) -> list[Verdict | str]:
    """The teacher's label of each path (question, images, answer, precision, solution_steps, response).

    A path whose answer is right is CORRECT without asking (the answer check decides, as in the paper). A wrong
    path gets the teacher's error step and analysis: `programmatic` compares it with the reference trace,
    `openai` asks the endpoint for the paper's JSON. A reply that is not that JSON, or that calls a
    wrong-answer path CORRECT, comes back as a string (the reason), for the caller to quarantine.
    """
    labels: list[Verdict | str] = []
    asks: list[int] = []
    client = ChatClient(cfg.openai) if cfg.backend == "openai" else None
    for i, p in enumerate(paths):
        _, correct, verdict = judge_path(
            p["response"], p["answer"], p["solution_steps"] or [], p["precision"], p.get("choices")
        )
        labels.append(verdict)
        if not correct and client is not None:
            asks.append(i)
    if client is not None:
        bodies = [
            client.body(
                annotate_prompt(question_text(paths[i]), paths[i]["answer"], paths[i]["response"], cfg.prompt_version),
                paths[i]["images"],
                seed=_request_seed(seed, ANNOTATE, stream, i),
            )
            for i in asks
        ]
        try:
            texts = [c.text for c in client.complete_all(bodies, desc="annotate wrong paths")]
        finally:
            write_teacher_cost(client, cost_path, cfg, "annotate", 0)
        for i, text in zip(asks, texts, strict=True):
            try:
                v = parse_verdict(text)
            except VerdictParseError as err:
                labels[i] = f"teacher annotation is not the verdict JSON ({err}): {text[:200]!r}"
                continue
            labels[i] = v if v.status == "WRONG" else "teacher annotation says CORRECT for a path whose answer is wrong"
    else:
        write_teacher_cost(None, cost_path, cfg, "annotate", 0)
    return labels
