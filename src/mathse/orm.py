"""The ORM: judges a reasoning path against the reference answer and finds where it went wrong.

Every judge answers in the paper's JSON fields: `status` (CORRECT / WRONG), `error_step`, `error_analysis`,
`improvement_suggestion`. Two backends (`orm.backend`):
- `rule`: the verdict is math-verify's answer check (via `grading`, the same checker the evaluation uses);
  the error step is the first step of the path that disagrees with the problem's reference trace.
- `model`: a VLM (a local transformers checkpoint, or an OpenAI-compatible endpoint) is shown the question,
  the image(s), the path and the reference answer and answers in that JSON. Output that does not parse is
  recorded as status INVALID with the raw text, never counted as correct.
Every judged path also gets math-verify's answer check (`answer_correct`), so each round records how often
its judge agrees with math-verify (`judge_stats`): a drifting ORM is visible. The check is bounded in time
and memory (`mathse.checks`): one cut short is wrong, with its reason in `check` (e.g. `timeout`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass

import polars as pl

from mathse.artifacts import read_table, write_table
from mathse.config import OrmConfig, VllmConfig
from mathse.grading import (
    answer_correct_column,
    check_answer,
    extract_answer,
    extract_answers,
    normalize,
    normalize_expr,
)
from mathse.prompts import STEP_PATTERN, orm_prompt, parse_steps

log = logging.getLogger(__name__)
JUDGE_NAME = "rule-orm-v1"
STATUSES = ("CORRECT", "WRONG")
# Text the column-wise wrong-step analysis handles (other text takes the per-row functions).
_PLAIN_TEXT = r"^[\t\n\x0b\x0c\r\x20-\x7e]*$"
_PRINTABLE = r"^[\x20-\x7e]*$"
INVALID = "INVALID"
VERDICT_SCHEMA = {
    "extracted": pl.String,
    "answer_correct": pl.Boolean,
    "check": pl.String,
    "status": pl.String,
    "error_step": pl.Int64,
    "error_analysis": pl.String,
    "improvement_suggestion": pl.String,
    "judge": pl.String,
    "judgment_json": pl.String,
}


@dataclass(frozen=True)
class Verdict:
    status: str
    error_step: int | None
    error_analysis: str
    improvement_suggestion: str

    def to_json(self) -> str:
        """The paper's JSON, in its field order (status first, which a generative ORM then writes first)."""
        return json.dumps(asdict(self))


def find_error_step(steps: list[str], reference: list[str]) -> tuple[int, str]:
    """1-based index of the first step that departs from the reference trace, and why."""
    if not steps:
        return 1, "The response has no numbered reasoning steps."
    for i, ref in enumerate(reference):
        if i >= len(steps):
            return i + 1, f"The path stops after step {i}; the reasoning needed to reach the answer is missing."
        if normalize(steps[i]) != normalize(ref):
            # Quote the path, never the reference step: it can hold the final answer (the paper's ORM
            # prompt forbids stating it), and the teacher has to fix the step, not copy it.
            return i + 1, (
                f"Step {i + 1} states '{steps[i]}', which does not follow from the image and the steps before it."
            )
    if len(steps) > len(reference):
        return len(reference) + 1, f"Step {len(reference) + 1} goes beyond the solution and is not needed."
    return len(steps) + 1, "The steps are right but the stated final answer does not follow from them."


def wrong_verdict(response: str, extracted: str | None, reference_steps: list[str]) -> Verdict:
    """The verdict on a path whose answer is wrong: the first wrong step, why, and how to fix it."""
    if not reference_steps:
        analysis = (
            "The path gives no final answer."
            if extracted is None
            else f"The final answer {extracted} does not match the reference answer."
        )
        return Verdict("WRONG", None, analysis, "Recheck the reasoning and the final answer.")
    step, analysis = find_error_step(parse_steps(response), reference_steps)
    if extracted is None:
        analysis += " The path gives no final answer."
    suggestion = (
        f"Keep steps 1 to {step - 1} and redo the reasoning from step {step}."
        if step > 1
        else ("Read the values from the image again and redo the reasoning from step 1.")
    )
    return Verdict("WRONG", step, analysis, suggestion)


def judge_path_checked(
    response: str,
    answer: str,
    reference_steps: list[str],
    precision: int | None = None,
    choices: list[str] | None = None,
) -> tuple[str | None, bool, str | None, Verdict]:
    """Judge one path: (extracted answer, answer correct, check, verdict). The reference for `judge_table`.

    `check` is why the bounded answer check was cut short (`timeout`, ...; see grading.checked), else None.
    """
    extracted = extract_answer(response)
    correct, check = check_answer(extracted, answer, precision, choices)
    if correct:
        return extracted, True, None, CORRECT_VERDICT
    return extracted, False, check, wrong_verdict(response, extracted, reference_steps)


def judge_path(
    response: str,
    answer: str,
    reference_steps: list[str],
    precision: int | None = None,
    choices: list[str] | None = None,
) -> tuple[str | None, bool, Verdict]:
    """Judge one path: (extracted answer, answer correct, verdict)."""
    extracted, correct, _, verdict = judge_path_checked(response, answer, reference_steps, precision, choices)
    return extracted, correct, verdict


CORRECT_VERDICT = Verdict("CORRECT", None, "", "")


def _verdict_row(extracted: str | None, correct: bool, check: str | None, v: Verdict) -> dict:
    return {
        "extracted": extracted,
        "answer_correct": correct,
        "check": check,
        "status": v.status,
        "error_step": v.error_step,
        "error_analysis": v.error_analysis,
        "improvement_suggestion": v.improvement_suggestion,
        "judge": JUDGE_NAME,
        "judgment_json": v.to_json(),
    }


def judge_table_per_row(paths: pl.DataFrame, problems: pl.DataFrame) -> pl.DataFrame:
    """`judge_table` one row at a time through `judge_path`: the oracle in tests, the baseline in benchmarks."""
    ref = {
        r["problem_id"]: r
        for r in with_choices(problems)
        .select("problem_id", "answer", "precision", "solution_steps", "choices")
        .iter_rows(named=True)
    }
    out = []
    for pid, response in paths.select("problem_id", "response").iter_rows():
        if pid not in ref:
            raise KeyError(f"path for unknown problem_id {pid!r}")
        p = ref[pid]
        verdict = judge_path_checked(response, p["answer"], p["solution_steps"] or [], p["precision"], p["choices"])
        out.append(_verdict_row(*verdict))
    return pl.DataFrame(out, schema=VERDICT_SCHEMA)


def _verdicts_in_python(wrong: pl.DataFrame, steps: dict) -> pl.DataFrame:
    verdicts = [wrong_verdict(r, extracted, steps.get(pid) or []) for pid, r, extracted in wrong.iter_rows()]
    return wrong.select("problem_id", "response").with_columns(
        error_step=pl.Series([v.error_step for v in verdicts], dtype=pl.Int64),
        error_analysis=pl.Series([v.error_analysis for v in verdicts], dtype=pl.String),
        improvement_suggestion=pl.Series([v.improvement_suggestion for v in verdicts], dtype=pl.String),
        judgment_json=pl.Series([v.to_json() for v in verdicts], dtype=pl.String),
    )


def _json_string(text: pl.Expr) -> pl.Expr:
    """json.dumps of printable ASCII text (callers check that it is)."""
    return (
        pl.lit('"')
        + text.str.replace_all("\\", "\\\\", literal=True).str.replace_all('"', '\\"', literal=True)
        + pl.lit('"')
    )


def wrong_verdicts(wrong: pl.DataFrame, steps: pl.DataFrame) -> pl.DataFrame:
    """`wrong_verdict` on each row of `wrong` (problem_id, response, extracted), against `steps`
    (problem_id, solution_steps): the WRONG verdict columns, keyed by (problem_id, response).

    Column-wise for printable ASCII text (steps parsed, normalised and compared to the reference trace as
    polars expressions); other text goes through `wrong_verdict` itself.
    """
    plain_steps = steps.select(
        "problem_id",
        ref=pl.col("solution_steps").fill_null([]),
        ref_plain=pl.col("solution_steps").fill_null([]).list.join("\n").str.contains(_PLAIN_TEXT),
    )
    w = wrong.join(plain_steps, on="problem_id", how="left", maintain_order="left").with_row_index("w")
    plain = pl.col("response").str.contains(_PLAIN_TEXT) & pl.col("ref_plain")
    other = w.filter(~plain)
    w = w.filter(plain)
    # steps of each path: lines as str.splitlines cuts ASCII text, then STEP_RE's text of each Step line
    lines = w.select("w", line=pl.col("response").str.replace_all(r"\r\n|[\r\x0b\x0c]", "\n").str.split("\n"))
    found = (
        lines.explode("line")
        .select("w", text=pl.col("line").str.extract("(?i)" + STEP_PATTERN, 2))
        .drop_nulls("text")
        .with_columns(k=pl.int_range(pl.len()).over("w"))
    )
    n_steps = found.group_by("w").agg(n_steps=pl.len())
    refs = (
        w.filter(pl.col("ref").list.len() > 0)
        .select("w", "ref")
        .explode("ref")
        .with_columns(k=pl.int_range(pl.len()).over("w"))
    )
    first_bad = (
        refs.join(found, on=["w", "k"], how="left")
        .filter(pl.col("text").is_null() | (normalize_expr(pl.col("text")) != normalize_expr(pl.col("ref"))))
        .sort("w", "k")
        .group_by("w", maintain_order=True)
        .first()
    )
    n, k, n_ref = pl.col("n_steps"), pl.col("k"), pl.col("ref").list.len()
    w = (
        w.join(n_steps, on="w", how="left")
        .with_columns(n_steps=pl.col("n_steps").fill_null(0), n_ref=n_ref)
        .drop("ref")
        .join(first_bad, on="w", how="left")
    )
    n_ref = pl.col("n_ref")
    step = (
        pl.when(n_ref == 0)
        .then(None)
        .when(n == 0)
        .then(1)
        .when(k.is_not_null())
        .then(k + 1)
        .when(n > n_ref)
        .then(n_ref + 1)
        .otherwise(n + 1)
        .cast(pl.Int64)
    )
    no_answer = pl.col("extracted").is_null()
    analysis = (
        pl.when(n_ref == 0)
        .then(
            pl.when(no_answer)
            .then(pl.lit("The path gives no final answer."))
            .otherwise(pl.format("The final answer {} does not match the reference answer.", "extracted"))
        )
        .otherwise(
            pl.when(n == 0)
            .then(pl.lit("The response has no numbered reasoning steps."))
            .when(k.is_not_null() & pl.col("text").is_null())
            .then(pl.format("The path stops after step {}; the reasoning needed to reach the answer is missing.", k))
            .when(k.is_not_null())
            .then(
                pl.format(
                    "Step {} states '{}', which does not follow from the image and the steps before it.", k + 1, "text"
                )
            )
            .when(n > n_ref)
            .then(pl.format("Step {} goes beyond the solution and is not needed.", n_ref + 1))
            .otherwise(pl.lit("The steps are right but the stated final answer does not follow from them."))
            + pl.when(no_answer).then(pl.lit(" The path gives no final answer.")).otherwise(pl.lit(""))
        )
    )
    suggestion = (
        pl.when(n_ref == 0)
        .then(pl.lit("Recheck the reasoning and the final answer."))
        .when(pl.col("error_step") > 1)
        .then(
            pl.format("Keep steps 1 to {} and redo the reasoning from step {}.", pl.col("error_step") - 1, "error_step")
        )
        .otherwise(pl.lit("Read the values from the image again and redo the reasoning from step 1."))
    )
    w = w.with_columns(error_step=step, error_analysis=analysis).with_columns(improvement_suggestion=suggestion)
    w = w.with_columns(
        judgment_json=pl.lit('{"status": "WRONG", "error_step": ')
        + pl.col("error_step").cast(pl.String).fill_null("null")
        + pl.lit(', "error_analysis": ')
        + _json_string(pl.col("error_analysis"))
        + pl.lit(', "improvement_suggestion": ')
        + _json_string(pl.col("improvement_suggestion"))
        + pl.lit("}")
    )
    cols = ["problem_id", "response", "error_step", "error_analysis", "improvement_suggestion", "judgment_json"]
    # json.dumps escapes control characters (a tab inside a step) and non-ASCII: left to Python
    escaped = w.filter(~pl.col("error_analysis").str.contains(_PRINTABLE))
    parts = [w.filter(pl.col("error_analysis").str.contains(_PRINTABLE)).select(cols)]
    if other.height or escaped.height:
        ref = dict(steps.iter_rows())
        parts.append(_verdicts_in_python(pl.concat([other.select(wrong.columns), escaped.select(wrong.columns)]), ref))
    return pl.concat(parts)


def with_choices(problems: pl.DataFrame) -> pl.DataFrame:
    """`problems` with a `choices` column (empty options where a caller's table has none)."""
    if "choices" in problems.columns:
        return problems.with_columns(pl.col("choices").fill_null([]))
    return problems.with_columns(choices=pl.lit([], dtype=pl.List(pl.String)))


def judge_table(paths: pl.DataFrame, problems: pl.DataFrame) -> pl.DataFrame:
    """Judge every row of `paths` (problem_id, response, ...) against `problems`: the verdict columns.

    The same verdicts as `judge_path` row by row, computed column-wise so a million paths take seconds:
    the answer check is `grading.answer_correct_column` (polars expressions, math-verify only on distinct
    unsettled pairs, options of choice problems named by letter or text), and the wrong-step analysis runs
    once per distinct wrong (problem_id, response).
    """
    problems = (
        with_choices(problems)
        .select("problem_id", "answer", "precision", "solution_steps", "choices")
        .unique("problem_id", keep="last", maintain_order=True)
    )
    unknown = paths.select("problem_id").join(problems, on="problem_id", how="anti")
    if unknown.height:
        raise KeyError(f"path for unknown problem_id {unknown['problem_id'][0]!r}")
    rows = paths.select("problem_id", "response").join(
        problems.select("problem_id", "answer", "precision", "choices"),
        on="problem_id",
        how="left",
        maintain_order="left",
    )
    rows = rows.with_columns(extracted=extract_answers(rows["response"]))
    rows = rows.with_columns(answer_correct_column(rows))
    wrong = (
        rows.filter(~pl.col("answer_correct"))
        .select("problem_id", "response", "extracted")
        .unique(["problem_id", "response"], maintain_order=True)
    )
    wrong = wrong_verdicts(wrong, problems.select("problem_id", "solution_steps"))
    correct = pl.col("answer_correct")
    return (
        rows.lazy()
        .select("problem_id", "response", "extracted", "answer_correct", "check")
        .join(wrong.lazy(), on=["problem_id", "response"], how="left", maintain_order="left")
        .select(
            "extracted",
            "answer_correct",
            "check",
            status=pl.when(correct).then(pl.lit("CORRECT")).otherwise(pl.lit("WRONG")),
            error_step=pl.when(correct).then(None).otherwise("error_step"),
            error_analysis=pl.when(correct).then(pl.lit("")).otherwise("error_analysis"),
            improvement_suggestion=pl.when(correct).then(pl.lit("")).otherwise("improvement_suggestion"),
            judge=pl.lit(JUDGE_NAME),
            judgment_json=pl.when(correct).then(pl.lit(CORRECT_VERDICT.to_json())).otherwise("judgment_json"),
        )
        .collect()
        .cast(VERDICT_SCHEMA)
    )


class VerdictParseError(ValueError):
    pass


def _fenced(text: str) -> str | None:
    """The text of the first ```json ... ``` (or ``` ... ```) block; found without a backtracking pattern."""
    start = text.find("```")
    if start < 0:
        return None
    k = start + 3
    if text[k : k + 4].lower() == "json":
        k += 4
    while k < len(text) and text[k].isspace():
        k += 1
    end = text.find("```", k)
    return None if end < 0 else text[k:end]


def parse_verdict(text: str) -> Verdict:
    """The paper's JSON verdict in a judge's output (fences and surrounding prose allowed).

    Raises VerdictParseError naming what is wrong: no JSON object, truncated or malformed JSON, a status
    other than CORRECT / WRONG, a non-integer error step.
    """
    text = (text or "").strip()
    fenced = _fenced(text)
    if fenced is not None:
        text = fenced.strip()
    start = text.find("{")
    if start < 0:
        raise VerdictParseError("no JSON object in the output")
    try:
        obj, _ = json.JSONDecoder().raw_decode(text[start:])
    except json.JSONDecodeError as err:
        raise VerdictParseError(f"malformed or truncated JSON: {err.msg} at char {err.pos}") from None
    except RecursionError:
        raise VerdictParseError("JSON nested too deeply") from None
    if not isinstance(obj, dict):
        raise VerdictParseError("the JSON is not an object")
    status = obj.get("status")
    if not isinstance(status, str) or status.strip().upper() not in STATUSES:
        raise VerdictParseError(f"status must be CORRECT or WRONG, got {status!r}")
    status = status.strip().upper()
    step = obj.get("error_step")
    if isinstance(step, str) and step.strip().isdigit():
        step = int(step.strip())
    if step is not None and (isinstance(step, bool) or not isinstance(step, int) or step < 1):
        raise VerdictParseError(f"error_step must be a positive integer or null, got {step!r}")

    def text_field(name: str) -> str:
        value = obj.get(name)
        return "" if value is None else value if isinstance(value, str) else json.dumps(value)

    if status == "CORRECT":
        return Verdict("CORRECT", None, text_field("error_analysis"), text_field("improvement_suggestion"))
    return Verdict("WRONG", step, text_field("error_analysis"), text_field("improvement_suggestion"))


def verdict_row(raw: str, extracted: str | None, answer_correct: bool, judge: str, check: str | None = None) -> dict:
    """A model judge's row: the parsed verdict, or INVALID with the reason (the raw text is kept)."""
    try:
        v = parse_verdict(raw)
    except VerdictParseError as err:
        v = Verdict(INVALID, None, f"unparsable judge output: {err}", "")
    return {
        "extracted": extracted,
        "answer_correct": answer_correct,
        "check": check,
        "status": v.status,
        "error_step": v.error_step,
        "error_analysis": v.error_analysis,
        "improvement_suggestion": v.improvement_suggestion,
        "judge": judge,
        "judgment_json": raw,
    }


def judge_config(orm: dict, weights: str | None, base: str | None, threads: int) -> OrmConfig:
    """The judge's settings in a rule (judge, reflect): with orm.trained, this run's ORM (its trained weights over
    its own model); torch set up where a local model judges."""
    cfg = OrmConfig.model_validate(orm)
    if weights:
        cfg = cfg.model_copy(update={"hf": cfg.hf.model_copy(update={"weights": weights, "path": base})})
    if cfg.backend == "model" and cfg.transport == "hf":
        from mathse.modeling import setup_torch  # torch only where a local judge runs

        setup_torch(threads)
    return cfg


def model_judge_name(cfg: OrmConfig, backbone: str | None) -> str:
    if cfg.transport == "openai":
        return f"{cfg.name} (openai:{cfg.openai.model})"
    weights = f"+{cfg.hf.weights}" if cfg.hf.weights else ""
    return f"{cfg.name} ({cfg.hf.backend}:{cfg.hf.path or backbone}{weights})"


def model_judge_table(
    paths: pl.DataFrame,
    problems: pl.DataFrame,
    cfg: OrmConfig,
    backbone: str | None = None,
    vllm_cfg: VllmConfig | None = None,
):
    """A model ORM's verdict on every row of `paths`: (verdict columns, ChatClient or None).

    `vllm_cfg`: engine settings when orm.hf.backend is vllm (defaults if None).
    """
    ref = {r["problem_id"]: r for r in with_choices(problems).iter_rows(named=True)}
    items = []
    for i, (pid, response) in enumerate(paths.select("problem_id", "response").iter_rows()):
        if pid not in ref:
            raise KeyError(f"path for unknown problem_id {pid!r}")
        p = ref[pid]
        prompt = orm_prompt(p["question"], p["answer"], response, cfg.prompt_version)
        items.append({"problem_id": f"{pid}#{i}", "question": p["question"], "images": p["images"], "prompt": prompt})
    client = None
    if not items:
        raws: list[str] = []
    elif cfg.transport == "openai":
        from mathse.api import ChatClient

        client = ChatClient(cfg.openai)
        bodies = [client.body(it["prompt"], it["images"]) for it in items]
        raws = [c.text for c in client.complete_all(bodies, desc="judge")]
    else:
        from mathse.modeling import load_processor

        path = cfg.hf.path or backbone
        if path is None:
            raise ValueError("orm.hf.path is unset and no backbone model.path was given")
        processor = load_processor(path)
        if cfg.hf.backend == "vllm":
            from mathse.vllm_backend import generate_paths, load_engine

            model = load_engine(path, cfg.hf.weights, cfg.hf.torch_dtype, vllm_cfg or VllmConfig())
        else:
            from mathse.generation import generate_paths
            from mathse.modeling import load_model

            model = load_model(path, cfg.hf.weights, cfg.hf.torch_dtype, trainable=False)
        out = generate_paths(
            model,
            processor,
            items,
            num_samples=1,
            do_sample=False,
            max_new_tokens=cfg.max_new_tokens,
            batch_size=cfg.hf.batch_size,
            desc="judge",
        )
        raws = [g["response"] for g in out]
    judge = model_judge_name(cfg, backbone)
    rows = []
    for (pid, response), raw in zip(paths.select("problem_id", "response").iter_rows(), raws, strict=True):
        p = ref[pid]
        extracted = extract_answer(response)
        correct, check = check_answer(extracted, p["answer"], p["precision"], p["choices"])
        rows.append(verdict_row(raw, extracted, correct, judge, check))
    return pl.DataFrame(rows, schema=VERDICT_SCHEMA), client


def judge_stats(judged: pl.DataFrame, round_idx: int) -> pl.DataFrame:
    """Per judge: verdict counts and agreement with math-verify (an INVALID verdict disagrees)."""
    if judged.height == 0:
        return pl.DataFrame(
            {"round": [round_idx], "judge": [""], "n": [0], "n_correct": [0], "n_wrong": [0], "n_invalid": [0]}
        ).with_columns(n_answer_correct=pl.lit(0, pl.Int64), agreement=pl.lit(None, pl.Float64))
    return (
        judged.group_by("judge", maintain_order=True)
        .agg(
            n=pl.len(),
            n_correct=(pl.col("status") == "CORRECT").sum(),
            n_wrong=(pl.col("status") == "WRONG").sum(),
            n_invalid=(pl.col("status") == INVALID).sum(),
            n_answer_correct=pl.col("answer_correct").sum(),
            agreement=((pl.col("status") == "CORRECT") == pl.col("answer_correct")).mean(),
        )
        .with_columns(round=pl.lit(round_idx, pl.Int64))
    )


def run_judge(
    rollouts_path: str,
    problems_path: str,
    out_path: str,
    cfg: OrmConfig | None = None,
    backbone: str | None = None,
    *,
    round_idx: int | None = None,
    stats_path: str | None = None,
    cost_path: str | None = None,
    vllm_cfg: VllmConfig | None = None,
) -> pl.DataFrame:
    """The judge rule: an ORM verdict for every sampled path of the round, and the judge's agreement."""
    cfg = cfg or OrmConfig()
    rollouts = read_table(rollouts_path, "rollout")
    problems = read_table(problems_path, "problem")
    client = None
    if cfg.backend == "model":
        verdicts, client = model_judge_table(rollouts, problems, cfg, backbone, vllm_cfg)
    else:
        verdicts = judge_table(rollouts, problems)
    judged = pl.concat([rollouts.drop("num_tokens", "finished", "temperature", "top_p"), verdicts], how="horizontal")
    if round_idx is None:
        round_idx = int(judged["round"][0]) if judged.height else 0
    stats = judge_stats(judged, round_idx)
    for s in stats.iter_rows(named=True):
        log.info(
            "judged %d paths with %s: %d CORRECT, %d WRONG, %d INVALID; math-verify says %d correct; "
            "agreement with math-verify %s",
            s["n"],
            s["judge"],
            s["n_correct"],
            s["n_wrong"],
            s["n_invalid"],
            s["n_answer_correct"],
            "n/a" if s["agreement"] is None else f"{s['agreement']:.3f}",
        )
    if stats_path:
        write_table(stats, stats_path, "judge_stats")
    if cost_path:
        from mathse.api import write_cost

        model = (cfg.openai.model if cfg.transport == "openai" else cfg.name) if cfg.backend == "model" else "rule"
        engine = cfg.hf.backend if cfg.transport == "hf" else cfg.transport  # hf transport: transformers or vLLM
        backend = f"model:{engine}" if cfg.backend == "model" else "rule"
        endpoint = client.public_url if client else ""
        write_cost(
            client.usage if client else None,
            cost_path,
            round_idx=round_idx,
            rule="judge",
            backend=backend,
            model=model,
            endpoint=endpoint,
        )
    cut = judged.filter(pl.col("check").is_not_null()).group_by("check").len().sort("check").rows()
    if cut:
        log.warning(
            "answer checks cut short (wrong, reason in `check`; answer_check.timeout_s sets the time limit): %s",
            ", ".join(f"{n} {reason}" for reason, n in cut),
        )
    log.info(
        "paths: %d empty, %d without a final answer, %d hit max_new_tokens",
        int((judged["response"].str.strip_chars() == "").sum()),
        int(judged["extracted"].is_null().sum()),
        int((~rollouts["finished"]).sum()),
    )
    return write_table(judged, out_path, "judgment")
