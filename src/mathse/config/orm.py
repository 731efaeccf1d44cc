"""The outcome reward model (`orm`): the judge, and the ORM this run may train."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mathse.config.base import Section
from mathse.config.generation import EndpointConfig
from mathse.config.run import TinyModelConfig
from mathse.config.training import TrainConfig

ORM_DIR = "{results_dir}/orm"


class OrmHfConfig(Section):
    path: str | None = Field(
        None,
        description="Local Hugging Face folder of the ORM checkpoint (a VLM fine-tuned to judge paths); "
        "None: the backbone `model.path` (untrained as a judge: expect parse failures).",
    )
    weights: str | None = Field(
        None, description="A trained weights folder (peft adapter or full weights) loaded over `path`."
    )
    torch_dtype: Literal["float32", "bfloat16", "float16"] = Field(
        "float32", description="Weights dtype for loading (from_pretrained's dtype)."
    )
    batch_size: int = Field(16, ge=1, description="Paths per greedy generate call (hf backend).")
    backend: Literal["hf", "vllm"] = Field(
        "hf", description="Engine of the local ORM: transformers (`hf`) or vLLM (`vllm`, settings in `vllm`)."
    )


class OrmConfig(Section):
    backend: Literal["rule", "model"] = Field(
        "rule",
        description="Judge: `rule` checks the answer with math-verify and finds the first wrong step "
        "from the problem's reference trace; `model` asks a VLM for the paper's JSON verdict.",
    )
    transport: Literal["hf", "openai"] = Field(
        "hf",
        description="backend `model` only: run the ORM locally with transformers (`orm.hf`) or call an "
        "OpenAI-compatible endpoint (`orm.openai`).",
    )
    name: str = Field("orm", description="backend `model`: judge name recorded in the `judge` column.")
    prompt_version: str = Field("v1", description="Version of the ORM prompt template.")
    max_new_tokens: int = Field(256, ge=1, description="Longest verdict in tokens (hf transport).")
    hf: OrmHfConfig = Field(default_factory=OrmHfConfig, description="Local transformers ORM.")
    openai: EndpointConfig = Field(
        default_factory=lambda: EndpointConfig(max_tokens=256),
        description="Endpoint of the `openai` transport.",
    )
    trained: bool = Field(
        False,
        description="Train and evaluate an ORM in this run (rules orm_data, orm_train, orm_evaluate -> "
        f"{ORM_DIR}/), starting from the backbone; with backend `model` and transport `hf`, the judge "
        "is this trained ORM.",
    )
    train_correct_fraction: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Share of correct paths in the ORM's training and evaluation data (the rest are wrong "
        "paths with their error step and analysis; of sampled paths, the scarcer kind is all kept and the other "
        "drawn to this share); the paper does not state its proportion.",
    )
    own_model: bool = Field(
        True,
        description="With model.make_tiny: train the ORM from a tiny model of its own, made at "
        f"{ORM_DIR}/model with the shape `tiny` and a tokenizer that also learns the ORM's prompt and verdict "
        "words (JSON keys and analysis phrases become tokens, not letters); false, or with a real backbone: the "
        "ORM fine-tunes the backbone (model.path).",
    )
    tiny: TinyModelConfig = Field(
        default_factory=lambda: TinyModelConfig(vocab_size=700, split_digits=False),
        description="Shape and tokenizer of the ORM's own tiny model (own_model).",
    )
    paths: Literal["corrupted", "sampled"] = Field(
        "corrupted",
        description="Where the ORM's labelled paths come from: `sampled` - as the paper, paths the round-0 model "
        "samples (samples_per_problem per problem, rollout settings) on the seed part (training) and on the "
        "suites' problems (held out), judged against the reference and annotated by the teacher; `corrupted` - "
        "each problem's reference trace, right or with a misread value or a slip (paths_per_problem per problem).",
    )
    samples_per_problem: int = Field(
        8, ge=1, description="paths `sampled`: paths the round-0 model samples per problem."
    )
    final_line_examples: bool = Field(
        True,
        description="Also train on each training path's final line alone under the ORM prompt (no question, no "
        "steps) with its status-only verdict: the comparison of the path's answer with the reference that decides "
        "a verdict, in a few tokens. A small ORM from random weights learns it there and then finds it at the same "
        "place in whole paths; held-out paths are always whole.",
    )
    final_line_steps: int = Field(
        1000,
        ge=0,
        description="With final_line_examples: train this many optimiser steps on the final-line rows alone first, "
        "then `train` on all rows from those weights (0: all rows from the start).",
    )
    final_line_batch_size: int = Field(
        32,
        ge=1,
        description="Sequences per optimiser step of the final-line stage. The comparison is learnt from the "
        "gradient's average over many answers: at 8 a tiny ORM stayed at chance for 2,000 steps on 840 final "
        "lines, at 32 it learnt it within 500.",
    )
    paths_per_problem: int = Field(
        2,
        ge=1,
        description="paths `corrupted`: training paths per seed and pool problem, spread so that each problem's "
        "paths contrast right and wrong ones (at train_correct_fraction overall); the held-out paths are one per "
        "suite problem.",
    )
    train: TrainConfig = Field(
        default_factory=lambda: TrainConfig(
            num_train_epochs=1,
            min_steps=1500,
            max_steps=1500,
            per_device_train_batch_size=8,
            loss_weights={'"status": "(\\w)': 20.0, '"error_step": ([^,}]+)': 20.0},
        ),
        description="Fine-tuning the ORM (same fields as `train`); the verdict's first token and its error step "
        "(`null` on a right path) weigh 20 times the others (loss_weights): the step is where a small ORM's "
        "output branches on its own verdict, and the JSON that follows is only right if that branch is.",
    )

    def judging(self) -> dict:
        """The settings a judge reads (the judge and reflect rules' params): the backend, and for a model judge
        its transport, prompt and engine. How a trained ORM is trained is left out (its weights are an input of
        those rules), so a changed orm.train setting reruns no rule-ORM judge of a finished run."""
        if self.backend == "rule":
            return {"backend": "rule"}
        keys = {"backend", "transport", "name", "prompt_version", "max_new_tokens", "hf", "openai"}
        return self.model_dump(mode="json", include=keys)
