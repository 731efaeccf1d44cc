"""Experiments (`experiments`): arms over seeds, compared with intervals."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from mathse.config.base import Section


class ExperimentsConfig(Section):
    """Arms x seeds of one experiment, run as one DAG by workflow/experiments.smk (`make experiments`)."""

    results_dir: str = Field(
        "results/experiments",
        description="Folder of the experiment: arms/{arm}/seed_{seed}/ (each a whole run), shared/ (work arms "
        "share), summary.parquet and comparison.md.",
    )
    logs_dir: str = Field("logs/experiments", description="Folder of the experiment's logs, laid out as results_dir.")
    seeds: list[int] = Field(
        default_factory=lambda: [0, 1, 2],
        min_length=1,
        description="run.seed of each repetition; every arm runs every seed, and arms that share a seed share its "
        "problems, tiny model and (when their settings are equal) round 0, so differences are paired by seed.",
    )
    reference: str | None = Field(
        None, description="The arm every other arm is compared with, paired by seed (null: the first arm)."
    )
    arms: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Arm name -> overrides of this config (same keys, deep-merged), e.g. no_reflection: "
        "{reflection: {schedule: 'off'}}. `train.match_steps_of` may name another arm (equal compute). Empty: "
        "no experiment (see config/presets/paper_ablations.yaml).",
    )
