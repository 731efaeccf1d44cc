"""The ORM: judges a reasoning path against the reference answer and finds where it went wrong.

Every judge answers in the paper's JSON fields: `status` (CORRECT / WRONG), `error_step`, `error_analysis`,
`improvement_suggestion`. Two backends (`orm.backend`):
- `rule`: the verdict is math-verify's answer check (via `grading`, the same checker the evaluation uses);
  the error step is the first step of the path that disagrees with the problem's reference trace.
- `model`: a VLM (a local transformers checkpoint, or an OpenAI-compatible endpoint) is shown the question,
  the image(s), the path and the reference answer and answers in that JSON. Output that does not parse is
  recorded as status INVALID with the raw text, never counted as correct.
Every judged path also gets math-verify's answer check (`answer_correct`), so each round records how often
its judge agrees with math-verify (`judge_stats`): a drifting ORM is visible.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import asdict, dataclass

import polars as pl

from mathse.artifacts import read_table, write_table
from mathse.config import OrmConfig, VllmConfig
from mathse.grading import answers_match, extract_answer, normalize
from mathse.logs import Progress
from mathse.prompts import orm_prompt, parse_steps

log = logging.getLogger(__name__)
JUDGE_NAME = "rule-orm-v1"
STATUSES = ("CORRECT", "WRONG")
INVALID = "INVALID"
VERDICT_SCHEMA = {
    "extracted": pl.String,
    "answer_correct": pl.Boolean,
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
            return i + 1, f"The path stops after step {i}; step {i + 1} should establish: {ref}"
        if normalize(steps[i]) != normalize(ref):
            return i + 1, f"Step {i + 1} states '{steps[i]}', but it should be '{ref}'."
    if len(steps) > len(reference):
        return len(reference) + 1, f"Step {len(reference) + 1} goes beyond the solution and is not needed."
    return len(steps) + 1, "The steps are right but the stated final answer does not follow from them."


def judge_path(
    response: str, answer: str, reference_steps: list[str], precision: int | None = None
) -> tuple[str | None, bool, Verdict]:
    """Judge one path: (extracted answer, answer correct, verdict)."""
    extracted = extract_answer(response)
    correct = answers_match(extracted, answer, precision)
    if correct:
        return extracted, True, Verdict("CORRECT", None, "", "")
    if not reference_steps:
        analysis = (
            "The path gives no final answer."
            if extracted is None
            else f"The final answer {extracted} does not match the reference answer."
        )
        return (
            extracted,
            False,
            Verdict("WRONG", None, analysis, "Recheck the reasoning and the final answer."),
        )
    step, analysis = find_error_step(parse_steps(response), reference_steps)
    if extracted is None:
        analysis += " The path gives no final answer."
    suggestion = (
        f"Keep steps 1 to {step - 1} and redo the reasoning from step {step}."
        if step > 1
        else ("Read the values from the image again and redo the reasoning from step 1.")
    )
    return extracted, False, Verdict("WRONG", step, analysis, suggestion)


def judge_table(paths: pl.DataFrame, problems: pl.DataFrame) -> pl.DataFrame:
    """Judge every row of `paths` (problem_id, response, ...) against `problems`: the verdict columns."""
    ref = {
        r["problem_id"]: r
        for r in problems.select("problem_id", "answer", "precision", "solution_steps").iter_rows(named=True)
    }
    out = []
    bar = Progress(paths.height, "judge", "paths", log)
    for pid, response in paths.select("problem_id", "response").iter_rows():
        if pid not in ref:
            raise KeyError(f"path for unknown problem_id {pid!r}")
        p = ref[pid]
        extracted, correct, v = judge_path(response, p["answer"], p["solution_steps"] or [], p["precision"])
        out.append(
            {
                "extracted": extracted,
                "answer_correct": correct,
                "status": v.status,
                "error_step": v.error_step,
                "error_analysis": v.error_analysis,
                "improvement_suggestion": v.improvement_suggestion,
                "judge": JUDGE_NAME,
                "judgment_json": v.to_json(),
            }
        )
        bar.update()
    bar.close()
    return pl.DataFrame(out, schema=VERDICT_SCHEMA)


_FENCE_RE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)


class VerdictParseError(ValueError):
    pass


def parse_verdict(text: str) -> Verdict:
    """The paper's JSON verdict in a judge's output (fences and surrounding prose allowed).

    Raises VerdictParseError naming what is wrong: no JSON object, truncated or malformed JSON, a status
    other than CORRECT / WRONG, a non-integer error step.
    """
    text = (text or "").strip()
    fenced = _FENCE_RE.search(text)
    if fenced:
        text = fenced.group(1).strip()
    start = text.find("{")
    if start < 0:
        raise VerdictParseError("no JSON object in the output")
    try:
        obj, _ = json.JSONDecoder().raw_decode(text[start:])
    except json.JSONDecodeError as err:
        raise VerdictParseError(f"malformed or truncated JSON: {err.msg} at char {err.pos}") from None
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


def verdict_row(raw: str, extracted: str | None, answer_correct: bool, judge: str) -> dict:
    """A model judge's row: the parsed verdict, or INVALID with the reason (the raw text is kept)."""
    try:
        v = parse_verdict(raw)
    except VerdictParseError as err:
        v = Verdict(INVALID, None, f"unparsable judge output: {err}", "")
    return {
        "extracted": extracted,
        "answer_correct": answer_correct,
        "status": v.status,
        "error_step": v.error_step,
        "error_analysis": v.error_analysis,
        "improvement_suggestion": v.improvement_suggestion,
        "judge": judge,
        "judgment_json": raw,
    }


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
    ref = {r["problem_id"]: r for r in problems.iter_rows(named=True)}
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
        rows.append(verdict_row(raw, extracted, answers_match(extracted, p["answer"], p["precision"]), judge))
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
    log.info(
        "paths: %d empty, %d without a final answer, %d hit max_new_tokens",
        int((judged["response"].str.strip_chars() == "").sum()),
        int(judged["extracted"].is_null().sum()),
        int((~rollouts["finished"]).sum()),
    )
    return write_table(judged, out_path, "judgment")
