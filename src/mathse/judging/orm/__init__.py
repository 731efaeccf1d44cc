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
and memory (`mathse.judging.checks`): one cut short is wrong, with its reason in `check` (e.g. `timeout`).

The verdict and its parsing are orm.verdict, the backends orm.rule and orm.model; this module is the judge
rule (`run_judge`) and its agreement statistics.
"""

from __future__ import annotations

import logging

import polars as pl

from mathse.artifacts import read_table, write_table
from mathse.config import OrmConfig, VllmConfig
from mathse.judging.orm.model import model_judge_table
from mathse.judging.orm.rule import judge_path as judge_path  # re-exported: orm_train.py imports it from here
from mathse.judging.orm.rule import judge_table
from mathse.judging.orm.verdict import INVALID
from mathse.judging.orm.verdict import Verdict as Verdict  # re-exported: orm_train.py imports it from here

log = logging.getLogger(__name__)


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
        from mathse.judging.api import write_cost

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
