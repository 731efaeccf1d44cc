"""What a run works on: seeds and folders (`run`), the backbone (`model`) and the problems (`data`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mathse.config.base import Section


class RunConfig(Section):
    seed: int = Field(
        0, description="Master seed; every random choice derives its seed from (seed, ...) integer tuples."
    )
    rounds: int = Field(3, ge=0, description="Self-evolution rounds R after the distillation round 0.")
    results_dir: str = Field("results", description="Folder for all artifacts (relative to the working directory).")
    logs_dir: str = Field("logs", description="Folder for per-rule, per-round logs.")
    name: str | None = Field(
        None,
        description="The run's name in experiment trackers (train.report_to) and in the training metrics' `run` "
        "column (null: results_dir, which in an experiment names the arm and seed).",
    )
    data_dir: str | None = Field(
        None,
        description="Folder of the prepared problems (null: {results_dir}/data). An experiment points its runs of "
        "one seed at one folder, so that the problems are made once.",
    )
    round0_dir: str | None = Field(
        None,
        description="Folder holding the base and round_0 stages (null: results_dir). An experiment points the arms "
        "whose round-0 settings are equal at one folder, so that distillation and round 0 run once per seed.",
    )


class TinyModelConfig(Section):
    architecture: Literal["qwen2_vl", "internvl"] = Field(
        "qwen2_vl",
        description="Which real architecture the tiny model has: Qwen2-VL (Qwen2VLForConditionalGeneration, "
        "mrope, dynamic-resolution patches) or InternVL (InternVLForConditionalGeneration: ViT tiles, pixel "
        "shuffle, a Qwen2 decoder), each with the real processor, loaded through the Auto classes.",
    )
    hidden_size: int = Field(64, description="Text decoder width (Qwen2VLTextConfig.hidden_size).")
    intermediate_size: int = Field(128, description="Text MLP width (Qwen2VLTextConfig.intermediate_size).")
    num_hidden_layers: int = Field(2, description="Text decoder layers.")
    num_attention_heads: int = Field(4, description="Text attention heads; hidden_size / heads must be even.")
    num_key_value_heads: int = Field(2, description="Text key/value heads (grouped-query attention).")
    vision_depth: int = Field(2, description="Vision transformer blocks (Qwen2VLVisionConfig.depth).")
    vision_embed_dim: int = Field(64, description="Vision transformer width (Qwen2VLVisionConfig.embed_dim).")
    vision_num_heads: int = Field(4, description="Vision attention heads.")
    vocab_size: int = Field(400, description="Target size of the locally trained byte-level BPE tokenizer.")
    max_position_embeddings: int = Field(1024, description="Longest sequence the tiny model supports.")
    split_digits: bool = Field(
        True,
        description="The tokenizer spells numbers one digit per token, as Qwen2's does; false: whole numbers are "
        "tokens (the tiny ORM's own model, which compares a path's final answer with the reference answer).",
    )


class ModelConfig(Section):
    path: str = Field(
        "results/model/tiny",
        description="Local Hugging Face folder of the backbone (any AutoModelForImageTextToText checkpoint "
        "with an AutoProcessor, e.g. Qwen2-VL-7B-Instruct). With make_tiny the pipeline creates it here.",
    )
    make_tiny: bool = Field(True, description="Create a tiny random Qwen2-VL-architecture model at `path` (demo).")
    name: str = Field("tiny-qwen2-vl", description="Short model name recorded in every row's provenance.")
    tiny: TinyModelConfig = Field(default_factory=TinyModelConfig, description="Shape of the tiny model.")
    torch_dtype: Literal["float32", "bfloat16", "float16"] = Field(
        "float32", description="Weights dtype for loading (from_pretrained's dtype)."
    )
    min_pixels: int | None = Field(None, description="Override the processor's min_pixels (None: checkpoint's).")
    max_pixels: int | None = Field(None, description="Override the processor's max_pixels (None: checkpoint's).")


# The scoring rules each import format gets unless a suite names others.
FORMAT_SCORING = {"mathvista": "mathvista", "mathverse": "mathverse", "mathvision": "mathvision"}
PROCEDURAL_SUITE = "synthetic"


class ProblemSource(Section):
    format: Literal["mathvista", "mathverse", "mathvision", "mathvl", "jsonl"] = Field(
        description="Published format of the files (see docs/benchmarks.md): MathVista testmini/test parquet, "
        "MathVerse testmini, MATH-Vision, MathVL-test style JSONL, or the generic JSONL/parquet."
    )
    path: str = Field(
        description="Local file, folder or glob as downloaded, relative to the working directory "
        "(nothing is fetched), e.g. benchmarks/MathVista/data/testmini-*.parquet."
    )
    where: dict[str, str] = Field(
        default_factory=dict,
        description="Keep only problems whose metadata has these values, e.g. {task: geometry problem solving} "
        "for MathVista's GPS subset, or {problem_version: Vision Only} for one MathVerse version.",
    )
    limit: int | None = Field(None, ge=1, description="Keep only the first N problems (null: all), for quick runs.")


class BenchmarkSource(ProblemSource):
    scoring: Literal["mathvista", "mathverse", "mathvision", "generic"] | None = Field(
        None,
        description="Whose official rules score this suite (null: the format's own; mathvl and jsonl: generic).",
    )

    @property
    def rules(self) -> str:
        return self.scoring or FORMAT_SCORING.get(self.format, "generic")


class DataConfig(Section):
    source: Literal["procedural", "files"] = Field(
        "procedural",
        description="Where the training problems (seed part and pool) come from: the embedded procedural generator, "
        "or local files in any import format (`files`: data.pool_sources and data.seed_sources).",
    )
    pool_sources: dict[str, ProblemSource] = Field(
        default_factory=dict,
        description="source `files`: training problem files, name -> {format, path, where, limit} (e.g. GeoQA+, "
        "Geometry3K, ChartQA as generic JSONL with images). Problem ids become `name/id`. Without seed_sources, "
        "n_seed of them (drawn with run.seed) form the seed part and the rest the pool.",
    )
    seed_sources: dict[str, ProblemSource] = Field(
        default_factory=dict,
        description="source `files`: problem files that form the seed part the teacher solves in round 0 "
        "(then every pool_sources problem is in the pool).",
    )
    families: list[Literal["chart", "geometry", "counting"]] = Field(
        default_factory=lambda: ["chart", "geometry", "counting"],
        min_length=1,
        description="Procedural problem families mixed evenly: bar-chart arithmetic, rectangle perimeter "
        "from labelled sides, counting dots in rows.",
    )
    n_seed: int = Field(120, ge=1, description="Problems in the seed part that the teacher solves in round 0.")
    n_pool: int = Field(600, ge=0, description="Problems in the pool that the model solves in rounds 1..R.")
    n_test: int = Field(150, ge=1, description="Problems in each held-out test suite.")
    image_size: int = Field(56, ge=28, description="Side of the square problem images in pixels.")
    max_value: int = Field(9, ge=2, le=99, description="Largest number drawn in a problem.")
    benchmarks: dict[str, BenchmarkSource] = Field(
        default_factory=dict,
        description="Benchmark suites imported from local files: suite name -> {format, path, scoring, where, "
        "limit}. Each is written to results/data/bench/{suite}.parquet and scored by its benchmark's rules when "
        "listed in eval.suites.",
    )
    contamination: Literal["off", "report", "exclude"] = Field(
        "report",
        description="Benchmark problems whose image (same pixels) or normalised question also appears in the seed "
        "part or pool: listed in the import log and results/data/bench/{suite}.contamination.jsonl (`report`), "
        "also removed from the suite (`exclude`), or not checked (`off`).",
    )
