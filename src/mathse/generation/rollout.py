"""The rollout and evaluate rules: the current model solves problems.

Rollouts sample k paths per remaining problem from round r-1's model; evaluation decodes one greedy path
per benchmark problem and scores it by the suite's benchmark rules (mathse.judging.scoring; the synthetic suite
uses the same checker as the ORM). Both work in resumable shards (`mathse.shards`): a killed job, rerun,
redoes only the shards it had not finished.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import cache

import polars as pl

from mathse.artifacts import empty, read_table, write_table
from mathse.config import EvalConfig, ModelConfig, RolloutConfig, VllmConfig
from mathse.generation.hf_backend import generate_paths
from mathse.judging.extractor import make_extractor
from mathse.judging.scoring import breakdown, score_table
from mathse.modeling import load_model, load_processor
from mathse.shards import fingerprint, path_digest, remove_shards, run_sharded

log = logging.getLogger(__name__)

PATH_SCHEMA = {
    "problem_id": pl.String,
    "sample_idx": pl.Int64,
    "response": pl.String,
    "num_tokens": pl.Int64,
    "finished": pl.Boolean,
}


class LazyModel:
    """Loads the model on first use, so that a fully resumed job never pays for loading it.

    With `vllm_cfg` the model is a vLLM engine (mathse.generation.vllm_backend) instead of a transformers model.
    """

    def __init__(self, model_cfg: ModelConfig, weights: str | None, vllm_cfg: VllmConfig | None = None):
        self.model_cfg, self.weights, self.vllm_cfg = model_cfg, weights, vllm_cfg

    @cache  # noqa: B019 - one instance per job
    def get(self):
        cfg = self.model_cfg
        processor = load_processor(cfg.path, cfg.min_pixels, cfg.max_pixels)
        if self.vllm_cfg is not None:
            from mathse.generation.vllm_backend import load_engine

            engine = load_engine(cfg.path, self.weights, cfg.torch_dtype, self.vllm_cfg,
                                 min_pixels=cfg.min_pixels, max_pixels=cfg.max_pixels)  # fmt: skip
            return engine, processor
        model = load_model(cfg.path, self.weights, cfg.torch_dtype, trainable=False)
        return model, processor

    def generate(self, problems: list[dict], **options) -> list[dict]:
        model, processor = self.get()
        if self.vllm_cfg is not None:
            from mathse.generation.vllm_backend import generate_paths as vllm_generate_paths

            return vllm_generate_paths(model, processor, problems, **options)
        return generate_paths(model, processor, problems, **options)


def backend_settings(backend: str, vllm_cfg: VllmConfig | None) -> VllmConfig | None:
    """The vLLM engine settings when `backend` is vllm (defaults if none were given), else None."""
    return (vllm_cfg or VllmConfig()) if backend == "vllm" else None


def sharded_paths(
    problems: pl.DataFrame,
    weights: str | None,
    out_path: str,
    model_cfg: ModelConfig,
    shard_size: int,
    key: str,
    name: str,
    options: Callable[[int], dict],
    vllm_cfg: VllmConfig | None = None,
    part: tuple[int, int] = (0, 1),
    timing: list[tuple[int, int, float]] | None = None,
) -> pl.DataFrame:
    """Generate paths for `problems` in resumable shards; `options(shard)` gives generate_paths' settings.

    `vllm_cfg`: generate with the vllm backend (checked importable before any work) instead of transformers.
    `part` (p, n): only every n-th shard from p, for one of n jobs that split the work.
    `timing`: gets (paths, new tokens, seconds) of each shard this job generates (resumed shards have none).
    """
    if vllm_cfg is not None:
        from mathse.generation.vllm_backend import require_vllm

        require_vllm()
    lazy = LazyModel(model_cfg, weights, vllm_cfg)

    def work(shard: int, items) -> pl.DataFrame:
        lazy.get()  # loading the model is not generating
        t0 = time.perf_counter()
        df = pl.DataFrame(lazy.generate(list(items), **options(shard)), schema=PATH_SCHEMA)
        if timing is not None:
            timing.append((df.height, int(df["num_tokens"].sum()), time.perf_counter() - t0))
        return df

    items = problems.select("problem_id", "question", "images").to_dicts()
    paths = run_sharded(items, shard_size, out_path, key, work, name, part)
    return paths if paths.height else pl.DataFrame(schema=PATH_SCHEMA)


def run_rollout(
    problems_path: str,
    weights: str | None,
    out_path: str,
    model_cfg: ModelConfig,
    cfg: RolloutConfig,
    *,
    round_idx: int,
    seed: int,
    vllm_cfg: VllmConfig | None = None,
    part: tuple[int, int] = (0, 1),
    stats_out: str | None = None,
) -> pl.DataFrame:
    """k sampled paths per problem still in the pool (`vllm_cfg`: the engine when cfg.backend is vllm; with
    `part` (p, n): those of every n-th shard from p). `stats_out`: the job's generation_stats."""
    problems = read_table(problems_path, "problem")
    vllm_cfg = backend_settings(cfg.backend, vllm_cfg)
    settings = cfg.model_dump(exclude={"parallel_jobs"})
    key = fingerprint(
        path_digest(problems_path), path_digest(weights), model_cfg.model_dump(), settings, seed, round_idx,
        *([vllm_cfg.model_dump()] if vllm_cfg else []),
    )  # fmt: skip
    paths = sharded_paths(
        problems,
        weights,
        out_path,
        model_cfg,
        cfg.shard_size,
        key,
        "rollout",
        options=lambda shard: dict(
            num_samples=cfg.num_samples,
            do_sample=True,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            max_new_tokens=cfg.max_new_tokens,
            batch_size=cfg.batch_size,
            prompt_version=cfg.prompt_version,
            seed_key=(seed, round_idx, 3, shard),
            desc=f"rollout round {round_idx} shard {shard}",
            stop=cfg.stop,
        ),
        vllm_cfg=vllm_cfg,
        part=part,
        timing=(timing := []),
    )
    out = paths.with_columns(
        temperature=pl.lit(cfg.temperature),
        top_p=pl.lit(cfg.top_p),
        round=pl.lit(round_idx, pl.Int64),
        model=pl.lit(model_cfg.name),
        backend=pl.lit(cfg.backend),
        prompt_version=pl.lit(cfg.prompt_version),
        seed=pl.lit(seed, pl.Int64),
    )
    unfinished = int((~out["finished"]).sum())
    log.info("%d paths for %d problems; %d hit max_new_tokens", out.height, problems.height, unfinished)
    if stats_out:
        stats = generation_stats(paths, timing, cfg.max_new_tokens, rule="rollout", suite=None,
                                 stage=f"round_{round_idx - 1}", round_idx=round_idx, backend=cfg.backend)  # fmt: skip
        write_table(stats, stats_out, "generation_stats")
    out = write_table(out, out_path, "rollout")
    remove_shards(out_path)
    return out


def generation_stats(
    paths: pl.DataFrame, timing: list[tuple[int, int, float]], max_new_tokens: int, **ident
) -> pl.DataFrame:
    """One generation_stats row: `paths` (num_tokens, finished) and the `timing` of the shards generated here.
    Problems are those of the paths (a rollout part's, not the whole pool's)."""
    gen_paths, gen_tokens, seconds = (sum(t[i] for t in timing) for i in range(3))
    cut = int((~paths["finished"]).sum()) if paths.height else 0
    row = {
        "rule": ident["rule"], "stage": ident["stage"], "round": ident["round_idx"], "suite": ident["suite"],
        "backend": ident["backend"], "problems": paths["problem_id"].n_unique(), "paths": paths.height,
        "tokens": int(paths["num_tokens"].sum()) if paths.height else 0, "cut": cut,
        "cut_share": cut / paths.height if paths.height else None, "max_new_tokens": max_new_tokens,
        "generated_paths": gen_paths, "generated_tokens": gen_tokens, "seconds": float(seconds),
        "tokens_per_second": gen_tokens / seconds if seconds > 0 else None,
        "paths_per_second": gen_paths / seconds if seconds > 0 else None,
    }  # fmt: skip
    log.info(
        "%s %s: %d paths, %.0f tokens/s, %.2f paths/s, %d of %d cut at max_new_tokens %d", ident["rule"],
        ident["suite"] or ident["stage"], paths.height, row["tokens_per_second"] or 0, row["paths_per_second"] or 0,
        cut, paths.height, max_new_tokens,
    )  # fmt: skip
    return pl.DataFrame([row], schema=empty("generation_stats").schema)


def join_generation_stats(part_paths: list[str], out_path: str) -> pl.DataFrame:
    """The stats of a rollout's parts (rollout.parallel_jobs) as one job's: counts and seconds summed, so the
    rates are per part (per engine), as one job's are."""
    parts = pl.concat([read_table(p, "generation_stats") for p in part_paths])
    summed = ["problems", "paths", "tokens", "cut", "generated_paths", "generated_tokens", "seconds"]
    first = ["rule", "stage", "round", "suite", "backend", "max_new_tokens"]
    row = parts.select([pl.col(c).first() for c in first] + [pl.col(c).sum() for c in summed])
    seconds = pl.when(pl.col("seconds") > 0).then(pl.col("seconds"))
    row = row.with_columns(
        cut_share=pl.when(pl.col("paths") > 0).then(pl.col("cut") / pl.col("paths")),
        tokens_per_second=pl.col("generated_tokens") / seconds,
        paths_per_second=pl.col("generated_paths") / seconds,
    )
    return write_table(row, out_path, "generation_stats")


def join_rollout_parts(problems_path: str, part_paths: list[str], out_path: str) -> pl.DataFrame:
    """The rollout rule with rollout.parallel_jobs > 1: the parts' paths in the order one job writes them."""
    order = read_table(problems_path, "problem").select("problem_id").with_row_index("_order")
    parts = pl.concat([read_table(p, "rollout") for p in part_paths])
    duplicated = parts.select(pl.struct("problem_id", "sample_idx").is_duplicated().any()).item()
    if duplicated or set(parts["problem_id"]) != set(order["problem_id"]):
        raise ValueError(f"{out_path}: the rollout parts {part_paths} overlap or do not cover {problems_path}")
    joined = parts.join(order, on="problem_id", how="left").sort("_order", "sample_idx").drop("_order")
    log.info("joined %d rollout parts: %d paths", len(part_paths), joined.height)
    return write_table(joined, out_path, "rollout")


def run_evaluate(
    suite_path: str,
    weights: str | None,
    out_path: str,
    model_cfg: ModelConfig,
    cfg: EvalConfig,
    *,
    suite: str,
    stage: str,
    seed: int,
    prompt_version: str,
    scoring: str = "mathse",
    vllm_cfg: VllmConfig | None = None,
    stats_out: str | None = None,
) -> pl.DataFrame:
    """Greedy answers to a held-out suite, scored per problem by the suite's benchmark rules (`scoring`).
    `stats_out`: the job's generation_stats."""
    problems = read_table(suite_path, "problem")
    vllm_cfg = backend_settings(cfg.backend, vllm_cfg)
    # The answer extractor only scores: changing it reuses the generated shards.
    settings = cfg.model_dump(exclude={"answer_extractor"})
    key = fingerprint(path_digest(suite_path), path_digest(weights), model_cfg.model_dump(), settings,
                      prompt_version, *([vllm_cfg.model_dump()] if vllm_cfg else []))  # fmt: skip
    paths = sharded_paths(
        problems,
        weights,
        out_path,
        model_cfg,
        cfg.shard_size,
        key,
        "evaluate",
        options=lambda shard: dict(
            num_samples=1,
            do_sample=False,
            max_new_tokens=cfg.max_new_tokens,
            batch_size=cfg.batch_size,
            prompt_version=prompt_version,
            desc=f"evaluate {stage} {suite} shard {shard}",
            stop=cfg.stop,
        ),
        vllm_cfg=vllm_cfg,
        timing=(timing := []),
    )
    if stats_out:
        round_idx = int(stage.removeprefix("round_")) if stage.startswith("round_") else None
        stats = generation_stats(paths, timing, cfg.max_new_tokens, rule="evaluate", stage=stage,
                                 round_idx=round_idx, suite=suite, backend=cfg.backend)  # fmt: skip
        write_table(stats, stats_out, "generation_stats")
    responses = paths["response"].to_list()
    out = score_table(problems, responses, scoring, make_extractor(cfg.answer_extractor)).with_columns(
        suite=pl.lit(suite),
        stage=pl.lit(stage),
        model=pl.lit(model_cfg.name),
        backend=pl.lit(cfg.backend),
        prompt_version=pl.lit(prompt_version),
        seed=pl.lit(seed, pl.Int64),
    )
    for row in breakdown(out, problems, scoring).select("key", "value", "accuracy", "n").iter_rows(named=True):
        log.info("%s on %s, %s %s: accuracy %.3f (%d problems)", stage, suite, *row.values())
    log.info("%s on %s: accuracy %.3f (%d problems)", stage, suite, out["correct"].mean(), out.height)
    out = write_table(out, out_path, "score")
    remove_shards(out_path)
    return out
