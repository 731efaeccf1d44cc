"""One declared schema per parquet artifact: its columns, their types and what each means.

Join keys: `problem_id` everywhere, plus `round` and `sample_idx` for generated paths.
Provenance columns (`round`, `model`, `backend`, `prompt_version`, `seed`) say what produced each row.
"""

from __future__ import annotations

import polars as pl

Str, Int, Float, Bool = pl.String, pl.Int64, pl.Float64, pl.Boolean
StrList = pl.List(pl.String)

PROBLEM = {
    "problem_id": Str,
    "question": Str,
    "images": StrList,  # image file paths, relative to the working directory
    "choices": StrList,  # empty for free-form answers
    "answer": Str,
    "answer_type": Str,  # integer | float | text | choice | list
    "precision": Int,  # decimals for float answers, null otherwise
    "source": Str,  # dataset or procedural family
    "split": Str,  # seed | pool | test
    "solution_steps": StrList,  # reference trace, one string per step (may be empty for benchmarks)
    "metadata": Str,  # JSON object: benchmark fields (question_type, unit, problem_version, subject, level ...)
}

PROVENANCE = {"round": Int, "model": Str, "backend": Str, "prompt_version": Str, "seed": Int}

DISTILLED = {
    "problem_id": Str,
    "response": Str,
    **PROVENANCE,
    "status": Str,  # the ORM's verdict on the teacher's solution: CORRECT | WRONG
    "check": Str,  # why its answer check was cut short and counted wrong (timeout, ...); null: it ran
}

ROLLOUT = {
    "problem_id": Str,
    "sample_idx": Int,
    "response": Str,
    "num_tokens": Int,
    "finished": Bool,  # False when generation hit max_new_tokens
    "temperature": Float,
    "top_p": Float,
    **PROVENANCE,
}

JUDGMENT = {
    "problem_id": Str,
    "sample_idx": Int,
    "response": Str,
    "extracted": Str,  # answer extracted from the path, null when none
    "answer_correct": Bool,  # math-verify against the reference answer
    "check": Str,  # why that check was cut short and counted wrong (timeout, memory, too_large, error); null: ran
    "status": Str,  # CORRECT | WRONG (paper JSON field) | INVALID (a model judge's unparsable output)
    "error_step": Int,  # 1-based first wrong step, null when correct or unknown
    "error_analysis": Str,
    "improvement_suggestion": Str,
    "judge": Str,  # which judge produced the verdict
    "judgment_json": Str,  # the verdict as the paper's JSON; a model judge's raw output text
    **PROVENANCE,
}

REFLECTION = {
    "problem_id": Str,
    "sample_idx": Int,
    "source_round": Int,  # round whose wrong path was rewritten
    "wrong_response": Str,
    "error_step": Int,
    "feedback": Str,  # orm | teacher | none
    "response": Str,  # the teacher's rewrite
    "status": Str,  # re-check of the rewrite by the configured judge (orm.backend)
    "judge": Str,  # who re-checked it
    "answer_correct": Bool,  # math-verify's answer check of the rewrite, whatever the judge
    "check": Str,  # why the re-check's answer check was cut short and counted wrong (timeout, ...); null: it ran
    "accepted": Bool,
    **PROVENANCE,
}

TRAIN = {
    "problem_id": Str,
    "question": Str,
    "images": StrList,
    "response": Str,
    "origin": Str,  # distill | self | reflect
    "round_added": Int,
    "sample_idx": Int,
    "model": Str,  # who wrote the response
    "backend": Str,
    "prompt_version": Str,
}

SCORE = {
    "suite": Str,
    "stage": Str,  # base | round_0 | round_1 ...
    "problem_id": Str,
    "source": Str,
    "response": Str,
    "extracted": Str,  # the answer taken from the response, null when none
    "rule": Str,  # which extraction rule produced it (answer_prefix, boxed, answer_is, letter, ...)
    "answer": Str,
    "correct": Bool,
    "matched_by": Str,  # how it equals the answer (exact, letter, numeric, math_verify, ...); null when wrong
    "check": Str,  # why the answer check was cut short and counted wrong (timeout, memory, too_large, error)
    "scoring": Str,  # the benchmark's rules used: mathse | mathvista | mathverse | mathvision | generic
    "extractor": Str,  # rule: null; `llm_extractor` rows: the extractor's model@prompt_version
    "model": Str,
    "backend": Str,
    "prompt_version": Str,
    "seed": Int,
}

QUARANTINE = {
    "file": Str,  # the table the row came from
    "row": Int,  # 0-based row in that file
    "problem_id": Str,
    "field": Str,  # the offending column
    "reason": Str,
}

# Per rule and round: what an API-backed teacher or judge cost (all zeros for local backends).
API_COST = {
    "round": Int,
    "rule": Str,  # distill | reflect | judge | annotate (ORM data)
    "backend": Str,
    "model": Str,
    "endpoint": Str,  # chat-completions URL without credentials; empty for local backends
    "requests": Int,  # HTTP requests sent, retries included
    "retries": Int,
    "completions": Int,  # completions used (fresh or from the cache)
    "cache_hits": Int,
    "prompt_tokens": Int,  # paid: fresh responses only
    "completion_tokens": Int,
    "cached_prompt_tokens": Int,  # served from the cache instead of paid
    "cached_completion_tokens": Int,
    "failures": Int,  # requests that failed for good
    "seconds": Float,
}

# Per round: the judge's verdicts and how often it agrees with math-verify on the same paths.
JUDGE_STATS = {
    "round": Int,
    "judge": Str,
    "n": Int,
    "n_correct": Int,  # status CORRECT
    "n_wrong": Int,
    "n_invalid": Int,  # verdicts that could not be parsed (never counted as correct)
    "n_answer_correct": Int,  # math-verify says the answer is right
    "agreement": Float,  # share of paths where (status == CORRECT) == answer_correct; invalid = disagree
}

# A labelled reasoning path for ORM training/evaluation (labels: the rule ORM's verdict on a made path).
ORM_EXAMPLE = {
    "problem_id": Str,
    "sample_idx": Int,  # the path's index among the problem's paths
    "question": Str,
    "images": StrList,
    "answer": Str,
    "precision": Int,
    "response": Str,  # the path
    "status": Str,  # label: CORRECT | WRONG
    "error_step": Int,  # label: first wrong step, null when correct
    "judgment_json": Str,  # the label as the paper's JSON (the ORM's training target)
}

# The trained ORM's verdict on each held-out labelled path.
ORM_EVAL = {
    "problem_id": Str,
    "response": Str,
    "label_status": Str,
    "label_step": Int,
    "pred_status": Str,  # CORRECT | WRONG | INVALID (unparsable output)
    "pred_step": Int,
    "raw": Str,  # the ORM's output text
}

SUMMARY = {
    "suite": Str,
    "stage": Str,
    "accuracy": Float,
    "n": Int,
    "n_correct": Int,
    "train_size": Int,
    "train_steps": Int,  # optimiser steps of this stage's own training (0 for base)
    "train_tokens": Int,  # tokens (prompt and response) those steps trained on
}

EXPERIMENT_SUMMARY = {
    "arm": Str,
    "seed": Int,
    "suite": Str,
    "stage": Str,
    "final": Bool,  # the arm's last stage, the one its comparison uses
    "accuracy": Float,
    "n": Int,
    "n_correct": Int,
    "train_size": Int,
    "train_steps": Int,  # this stage's own training
    "train_tokens": Int,
    "total_train_steps": Int,  # everything the arm trained through this stage (base: 0)
    "total_train_tokens": Int,
}

# One row per optimiser step of a training job (results/round_{r}/adapter/train_metrics.parquet, the ORM's
# adapter too): totals over all processes under DDP/FSDP, written by process 0. The *_seconds and per-second
# columns are wall-clock measurements; every other column is the same for the same config and seed on CPU.
TRAIN_METRICS = {
    "run": Str,  # the run name trackers see: run.name (or run.results_dir) / job
    "job": Str,  # what trained: round_<r> | orm | orm_binary | orm_final_lines (the ORM's curriculum stage)
    "round": Int,  # the round of a round_<r> job; null for the ORM
    "step": Int,  # optimiser step of this job, 1-based
    "epoch": Float,  # passes over the training set after this step
    "loss": Float,  # the step's mean loss over its forward passes and processes
    "learning_rate": Float,  # the lr this step used
    "grad_norm": Float,  # total gradient norm before clipping
    "tokens": Int,  # tokens (prompt and response) this step trained on, all processes
    "examples": Int,  # sequences this step trained on, all processes
    "padding_share": Float,  # padded positions / all positions of the step's batches
    "processes": Int,  # training processes (the totals are over all of them)
    "step_seconds": Float,  # wall-clock time of this step
    "tokens_per_second": Float,  # tokens / step_seconds
    "examples_per_second": Float,
    "wall_seconds": Float,  # since the job began; a resumed job continues from its checkpoint's row
}

# Per generation job (rollout: one per round; evaluate: one per stage and suite): throughput and paths
# cut at max_new_tokens. The seconds and per-second columns are wall-clock and cover the paths this job
# generated itself (shards finished by an earlier, killed attempt are counted in paths, not in the rate).
GENERATION_STATS = {
    "rule": Str,  # rollout | evaluate
    "stage": Str,  # the model generating: base | round_<r> (a rollout of round r samples from round_<r-1>)
    "round": Int,  # the rollout's round; evaluate: the stage's round (null for base)
    "suite": Str,  # evaluate: the suite; rollout: null
    "backend": Str,  # hf | vllm
    "problems": Int,
    "paths": Int,
    "tokens": Int,  # new tokens of all paths
    "cut": Int,  # paths that hit max_new_tokens before EOS or a stop string
    "cut_share": Float,  # cut / paths
    "max_new_tokens": Int,
    "generated_paths": Int,  # paths this job generated (not resumed from shards)
    "generated_tokens": Int,
    "seconds": Float,  # wall-clock time generating them
    "tokens_per_second": Float,  # generated_tokens / seconds (null when all shards were resumed)
    "paths_per_second": Float,
}

# The columns that describe one attempt of a job, not its inputs: wall-clock measurements (the only columns that
# differ between two whole runs of one config and seed) and, in generation stats, the work this attempt did (a job
# resumed after a kill generates only the shards it lacked). Every other column is the same however the job ran.
PER_ATTEMPT = {
    "train_metrics": ["step_seconds", "tokens_per_second", "examples_per_second", "wall_seconds"],
    "generation_stats": ["seconds", "tokens_per_second", "paths_per_second", "generated_paths", "generated_tokens"],
}

SCHEMAS: dict[str, dict[str, pl.DataType]] = {
    "problem": PROBLEM,
    "distilled": DISTILLED,
    "rollout": ROLLOUT,
    "judgment": JUDGMENT,
    "reflection": REFLECTION,
    "train": TRAIN,
    "score": SCORE,
    "summary": SUMMARY,
    "experiment_summary": EXPERIMENT_SUMMARY,
    "quarantine": QUARANTINE,
    "api_cost": API_COST,
    "judge_stats": JUDGE_STATS,
    "orm_example": ORM_EXAMPLE,
    "orm_eval": ORM_EVAL,
    "train_metrics": TRAIN_METRICS,
    "generation_stats": GENERATION_STATS,
}


# Columns added after artifacts were first written: a table without one gets it as nulls (what it meant
# then), so results written before stay readable.
ADDED_COLUMNS = {name: {"check"} for name in ("distilled", "judgment", "reflection", "score")}
