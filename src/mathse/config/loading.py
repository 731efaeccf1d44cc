"""The whole config: its sections, the checks across them, and loading with an error that names each bad key."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, model_validator

from mathse.config.base import Section
from mathse.config.evaluation import AnswerCheckConfig, EvalConfig
from mathse.config.experiments import ExperimentsConfig
from mathse.config.generation import ReflectionConfig, RolloutConfig, TeacherConfig, VllmConfig
from mathse.config.orm import OrmConfig
from mathse.config.run import PROCEDURAL_SUITE, DataConfig, ModelConfig, RunConfig
from mathse.config.training import AssembleConfig, TrainConfig


class Config(Section):
    """The whole pipeline configuration (config/config.yaml)."""

    run: RunConfig = Field(default_factory=RunConfig, description="Seeds, rounds and folders.")
    model: ModelConfig = Field(default_factory=ModelConfig, description="The backbone being improved.")
    data: DataConfig = Field(default_factory=DataConfig, description="Problem pool, seed part and test suites.")
    teacher: TeacherConfig = Field(
        default_factory=TeacherConfig, description="Teacher for distillation and reflection."
    )
    rollout: RolloutConfig = Field(default_factory=RolloutConfig, description="Sampling of reasoning paths.")
    orm: OrmConfig = Field(default_factory=OrmConfig, description="Outcome reward model (judge).")
    reflection: ReflectionConfig = Field(default_factory=ReflectionConfig, description="Teacher reflections.")
    assemble: AssembleConfig = Field(default_factory=AssembleConfig, description="Growing the training set.")
    train: TrainConfig = Field(default_factory=TrainConfig, description="Fine-tuning.")
    eval: EvalConfig = Field(default_factory=EvalConfig, description="Benchmark evaluation.")
    answer_check: AnswerCheckConfig = Field(
        default_factory=AnswerCheckConfig,
        description="Time and memory limits of answer checks (judge, scoring, reflection re-checks).",
    )
    vllm: VllmConfig = Field(
        default_factory=VllmConfig, description="The vLLM engine, for the rules whose backend is `vllm`."
    )
    experiments: ExperimentsConfig = Field(
        default_factory=ExperimentsConfig,
        description="Named arms over seeds, compared with intervals (workflow/experiments.smk; ignored by a "
        "single run).",
    )

    @model_validator(mode="after")
    def _check(self) -> Config:
        data = self.data
        if data.source == "files" and not (data.pool_sources or data.seed_sources):
            raise ValueError("data.source is `files` but data.pool_sources and data.seed_sources are empty")
        if data.source == "procedural" and (data.pool_sources or data.seed_sources):
            raise ValueError("data.pool_sources / data.seed_sources are set: also set data.source: files")
        for name in [*data.pool_sources, *data.seed_sources]:
            if not re.fullmatch(r"[A-Za-z0-9_\-]+", name):
                raise ValueError(f"data sources: a source name is letters, digits, _ or -, not {name!r}")
        if set(data.pool_sources) & set(data.seed_sources):
            raise ValueError("data.pool_sources and data.seed_sources share a name; give each source its own")
        for name in self.data.benchmarks:
            if name == PROCEDURAL_SUITE or not re.fullmatch(r"[A-Za-z0-9_\-]+", name):
                raise ValueError(
                    f"data.benchmarks.{name}: a suite name is letters, digits, _ or -, and not {PROCEDURAL_SUITE!r}"
                )
        known = [PROCEDURAL_SUITE, *self.data.benchmarks]
        unknown = [s for s in self.eval.suites if s not in known]
        if unknown:
            raise ValueError(f"eval.suites: {unknown} not declared; known suites: {known} (add it to data.benchmarks)")
        if len(set(self.eval.suites)) != len(self.eval.suites):
            raise ValueError(f"eval.suites: a suite is listed twice in {self.eval.suites}")
        exp = self.experiments
        for name in exp.arms:
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
                raise ValueError(f"experiments.arms: an arm name is a letter, then letters, digits or _, not {name!r}")
        if exp.reference is not None and exp.reference not in exp.arms:
            raise ValueError(f"experiments.reference: {exp.reference!r} is not an arm; arms: {list(exp.arms)}")
        if len(set(exp.seeds)) != len(exp.seeds):
            raise ValueError(f"experiments.seeds: a seed is listed twice in {exp.seeds}")
        return self

    def suite_scoring(self, suite: str) -> str:
        """The rules a suite is scored by: the pipeline's own for synthetic, else its benchmark's."""
        return "mathse" if suite == PROCEDURAL_SUITE else self.data.benchmarks[suite].rules


class ConfigError(ValueError):
    """A config that cannot run; the message names each bad key and why."""


def load_config(raw: dict[str, Any]) -> Config:
    """Validate a raw config dict (as Snakemake or yaml gives it), with a readable error."""
    try:
        return Config.model_validate(raw)
    except ValidationError as err:
        lines = []
        for e in err.errors():
            key = ".".join(str(p) for p in e["loc"]) or "<config>"
            # a value given for api_key_env may be a pasted key: never echoed
            got = "" if "api_key_env" in e["loc"] else f" (got {e.get('input')!r})"
            lines.append(f"  {key}: {e['msg']}{got}")
        raise ConfigError("invalid config:\n" + "\n".join(lines)) from None


def load_config_file(path: str | Path) -> Config:
    with open(path) as f:
        return load_config(yaml.safe_load(f) or {})
