"""Scoring the stages on the test suites (`eval`), answer extraction and the limits of answer checks."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mathse.config.base import Section
from mathse.config.generation import EndpointConfig


class ExtractorConfig(Section):
    backend: Literal["rules", "openai"] = Field(
        "rules",
        description="How answers are taken from responses: each benchmark's rules only (`rules`), or also an LLM "
        "behind an OpenAI-compatible endpoint for the responses where the rules find no answer (`openai`, as the "
        "official MathVista/MathVerse scripts and lmms-eval do); its rows record the extractor in `extractor`.",
    )
    prompt_version: str = Field("v1", description="Version of the extraction prompt (mathse.prompts.EXTRACT_PROMPTS).")
    openai: EndpointConfig = Field(
        default_factory=lambda: EndpointConfig(model="gpt-4o-mini", max_tokens=32),
        description="The endpoint of the `openai` extractor.",
    )


class AnswerCheckConfig(Section):
    """Limits of every answer check: the rule ORM's, each suite's scorer, the reflection re-check, `mathse score`."""

    timeout_s: float = Field(
        5.0,
        gt=0,
        description="Seconds one answer check may take (one judged path, scored response or re-checked "
        "reflection, all its symbolic comparisons together). math-verify runs in a worker process that is "
        "stopped at the limit, from any thread or process; the row is then WRONG with `check: timeout` "
        "(judgments, scores, reflections, distilled). Answers with huge numbers (towers, factorials of "
        "large numbers, deep nesting) are refused before sympy sees them (`check: too_large`). Raise it if "
        "`check: timeout` shows on answers that should count.",
    )
    memory_mb: int = Field(
        1024,
        ge=64,
        description="Memory in MiB the answer-check worker may take beyond what it holds once started; a "
        "check past it is WRONG with `check: memory`.",
    )


class EvalConfig(Section):
    backend: Literal["hf", "vllm"] = Field(
        "hf", description="Generation backend for greedy evaluation: `hf` or `vllm` (as rollout.backend)."
    )
    suites: list[str] = Field(
        default_factory=lambda: ["synthetic"],
        min_length=1,
        description="Held-out suites scored at every stage (results/data/bench/{suite}.parquet), in table order: "
        "`synthetic` (procedural problems) and names declared in data.benchmarks.",
    )
    batch_size: int = Field(64, ge=1, description="Prompts per greedy generate call.")
    max_new_tokens: int = Field(64, ge=1, description="Longest generated answer in tokens.")
    stop: list[str] = Field(
        default_factory=list, description="Strings that end an answer as EOS does (as rollout.stop)."
    )
    shard_size: int = Field(64, ge=1, description="Problems per resumable shard of an evaluation job.")
    answer_extractor: ExtractorConfig = Field(
        default_factory=ExtractorConfig, description="Answer extraction where the benchmark's rules find none."
    )
