"""The model judge (`orm.backend: model`): a VLM, a local checkpoint (transformers or vLLM, `orm.hf`) or an
OpenAI-compatible endpoint (`orm.openai`), is shown the question, the image(s), the path and the reference answer
and answers in the paper's JSON; each path also gets math-verify's answer check."""

from __future__ import annotations

import polars as pl

from mathse.config import OrmConfig, VllmConfig
from mathse.judging.grading import check_answer, extract_answer
from mathse.judging.orm.rule import with_choices
from mathse.judging.orm.verdict import VERDICT_SCHEMA, verdict_row
from mathse.prompts import orm_prompt


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
        from mathse.judging.api import ChatClient

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
            from mathse.generation.vllm_backend import generate_paths, load_engine

            model = load_engine(path, cfg.hf.weights, cfg.hf.torch_dtype, vllm_cfg or VllmConfig())
        else:
            from mathse.generation.hf_backend import generate_paths
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
