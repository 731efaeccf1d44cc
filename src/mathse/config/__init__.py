"""The pipeline's configuration: one pydantic model per config section.

This package is the single source of truth. `workflow/schemas/config.schema.json` (read by Snakemake's
`validate`) and `config/defaults.yaml` (the documented defaults) are generated from it by
`python -m mathse.config --write`, and a test fails when they drift.
Fields that feed a library argument carry that argument's name (peft `LoraConfig`, torch `AdamW`).

The sections live by area (run, generation, training, orm, evaluation, experiments); `loading` puts them
together into `Config`; `files` writes the generated files. Import every name from `mathse.config`.
"""

from mathse.config.base import Section
from mathse.config.evaluation import AnswerCheckConfig, EvalConfig, ExtractorConfig
from mathse.config.experiments import ExperimentsConfig
from mathse.config.files import DEFAULTS_PATH, SCHEMA_PATH, defaults_yaml, json_schema, main
from mathse.config.generation import (
    ENV_NAME_RE,
    EndpointConfig,
    ReflectionConfig,
    RolloutConfig,
    TeacherConfig,
    VllmConfig,
    looks_like_key,
)
from mathse.config.loading import Config, ConfigError, load_config, load_config_file
from mathse.config.orm import ORM_DIR, OrmConfig, OrmHfConfig
from mathse.config.run import (
    FORMAT_SCORING,
    PROCEDURAL_SUITE,
    BenchmarkSource,
    DataConfig,
    ModelConfig,
    ProblemSource,
    RunConfig,
    TinyModelConfig,
)
from mathse.config.training import MONITORING, AssembleConfig, LoraSettings, TrainConfig

__all__ = [
    "DEFAULTS_PATH",
    "ENV_NAME_RE",
    "FORMAT_SCORING",
    "MONITORING",
    "ORM_DIR",
    "PROCEDURAL_SUITE",
    "SCHEMA_PATH",
    "AnswerCheckConfig",
    "AssembleConfig",
    "BenchmarkSource",
    "Config",
    "ConfigError",
    "DataConfig",
    "EndpointConfig",
    "EvalConfig",
    "ExperimentsConfig",
    "ExtractorConfig",
    "LoraSettings",
    "ModelConfig",
    "OrmConfig",
    "OrmHfConfig",
    "ProblemSource",
    "ReflectionConfig",
    "RolloutConfig",
    "RunConfig",
    "Section",
    "TeacherConfig",
    "TinyModelConfig",
    "TrainConfig",
    "VllmConfig",
    "defaults_yaml",
    "json_schema",
    "load_config",
    "load_config_file",
    "looks_like_key",
    "main",
]
