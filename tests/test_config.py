"""Config: pydantic is the single source; the JSON schema and defaults file must not drift from it."""

import json
from pathlib import Path

import pytest
import yaml

from mathse.config import (
    DEFAULTS_PATH,
    SCHEMA_PATH,
    Config,
    ConfigError,
    defaults_yaml,
    json_schema,
    load_config,
    load_config_file,
)

ROOT = Path(__file__).resolve().parents[1]


def test_schema_file_matches_models():
    on_disk = json.loads((ROOT / SCHEMA_PATH).read_text())
    assert on_disk == json_schema(), "run `python -m mathse.config --write` and commit the result"
    assert on_disk["$schema"] == "https://json-schema.org/draft/2020-12/schema"  # what Snakemake validates with


def test_defaults_file_matches_models():
    assert (ROOT / DEFAULTS_PATH).read_text() == defaults_yaml(), "run `python -m mathse.config --write`"
    assert Config.model_validate(yaml.safe_load(defaults_yaml())) == Config()


def test_every_field_is_documented():
    def walk(model):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"
            ann = field.annotation
            if isinstance(ann, type) and hasattr(ann, "model_fields"):
                walk(ann)

    walk(Config)


@pytest.mark.parametrize(
    "path",
    [
        "config/config.yaml",
        "tests/config_tiny.yaml",
        "config/defaults.yaml",
        "config/presets/qwen2-vl-7b.yaml",
        "config/presets/internvl2_5-8b.yaml",
    ],
)
def test_shipped_configs_are_valid(path):
    load_config_file(ROOT / path)


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ({"run": {"rounds": "three"}}, "run.rounds"),
        ({"run": {"rounds": -1}}, "run.rounds"),
        ({"trian": {}}, "trian: Extra inputs are not permitted"),
        ({"train": {"method": "qlora"}}, "train.method"),
        ({"reflection": {"schedule": "sometimes"}}, "reflection.schedule"),
        ({"train": {"lora": {"rank": 8}}}, "train.lora.rank"),
        ({"rollout": {"temperature": 0}}, "rollout.temperature"),
        ({"data": {"families": ["chart", "calculus"]}}, "data.families.1"),
    ],
)
def test_invalid_config_names_the_key(raw, needle):
    with pytest.raises(ConfigError) as err:
        load_config(raw)
    assert needle in str(err.value)


def test_lora_fields_feed_peft_directly():
    from peft import LoraConfig

    cfg = Config().train.lora
    lora = LoraConfig(**cfg.model_dump())
    assert lora.r == cfg.r and lora.lora_alpha == cfg.lora_alpha


def test_benchmark_suites_are_declared_and_scored_by_their_rules():
    cfg = load_config(
        {
            "data": {
                "benchmarks": {
                    "gps": {
                        "format": "mathvista",
                        "path": "b/*.parquet",
                        "where": {"task": "geometry problem solving"},
                    },
                    "mine": {"format": "jsonl", "path": "mine.jsonl"},
                    "vl": {"format": "mathvl", "path": "vl.jsonl", "scoring": "mathverse"},
                }
            },
            "eval": {"suites": ["gps", "synthetic", "mine", "vl"]},
        }
    )
    assert [cfg.suite_scoring(s) for s in cfg.eval.suites] == ["mathvista", "mathse", "generic", "mathverse"]


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ({"eval": {"suites": ["mathvista"]}}, "eval.suites: ['mathvista'] not declared"),
        ({"eval": {"suites": ["synthetic", "synthetic"]}}, "listed twice"),
        ({"data": {"benchmarks": {"synthetic": {"format": "jsonl", "path": "x"}}}}, "data.benchmarks.synthetic"),
        ({"data": {"benchmarks": {"a b": {"format": "jsonl", "path": "x"}}}}, "data.benchmarks.a b"),
        ({"data": {"benchmarks": {"x": {"format": "mmmu", "path": "x"}}}}, "data.benchmarks.x.format"),
        ({"data": {"benchmarks": {"x": {"format": "jsonl"}}}}, "data.benchmarks.x.path"),
        ({"data": {"contamination": "drop"}}, "data.contamination"),
    ],
)
def test_invalid_benchmark_config_names_the_key(raw, needle):
    with pytest.raises(ConfigError) as err:
        load_config(raw)
    assert needle in str(err.value)


def test_benchmarks_preset_is_valid():
    cfg = load_config_file(ROOT / "config/presets/benchmarks.yaml")
    assert cfg.eval.suites == ["gps", "mathvista", "mathverse", "mathvision"]
    assert [cfg.suite_scoring(s) for s in cfg.eval.suites] == ["mathvista", "mathvista", "mathverse", "mathvision"]
