"""Experiments: named arms (overrides of one base config) x seeds, run as one Snakemake DAG and compared.

`workflow/experiments.smk` imports the main workflow once per arm and seed, as a Snakemake module with that
run's config (`plan`). Runs share work through folders, so it is computed once and a dry run shows it:
- per seed, the prepared problems and the tiny model (`run.data_dir`, `model.path`);
- per seed and round-0 settings, the base and round-0 stages (`run.round0_dir`): arms that differ only after
  round 0 (reflection, sampling, train.init, assemble.verified, rounds) distil and train round 0 once.
Each shared folder is made by one "owner" module (a run with `run.rounds: 0`); the arms' modules leave out
the rules that would write it.

`summarize_experiment` gathers every run's summary into one table and writes `comparison.md`: per arm and
suite the mean over seeds, its standard deviation and 95% interval, and the difference to the reference arm
paired by seed, with the optimiser steps and tokens each arm trained on.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from mathse.artifacts import read_table, write_table, write_text_atomic
from mathse.config import ConfigError, load_config

log = logging.getLogger(__name__)

# Settings that do not change the problems, the base model nor round 0: arms differing only in these share
# round 0. Anything else (rollout.prompt_version, which training and evaluation use, included) splits it.
AFTER_ROUND0 = [
    ("run", "rounds"),
    ("run", "results_dir"),
    ("run", "logs_dir"),
    ("run", "round0_dir"),
    ("run", "name"),
    ("train", "report_to"),  # watching a run changes no result (config.MONITORING)
    ("train", "metrics_flush_steps"),
    ("reflection",),
    ("orm",),  # the judge of rounds >= 1 (round 0's teacher paths are checked by math-verify)
    ("train", "init"),
    ("assemble", "verified"),
    ("assemble", "max_correct_per_problem"),
    ("experiments",),
] + [
    ("rollout", key)
    for key in (
        "backend",
        "num_samples",
        "temperature",
        "top_p",
        "max_new_tokens",
        "stop",
        "batch_size",
        "shard_size",
        "parallel_jobs",
    )
]
# Rules that write the folders of one seed's problems and model; only their first owner module keeps them.
DATA_RULES = ["prepare", "make_tiny_model", "import_benchmark"]
# Rules that write round 0; arms read it from their owner's folder.
ROUND0_RULES = [*DATA_RULES, "distill"]


@dataclass(frozen=True)
class Run:
    """One Snakemake module of the experiment: an arm's run for one seed, or the owner of a shared round 0."""

    name: str  # module name, a valid rule-name prefix
    arm: str | None  # None for an owner
    seed: int
    config: dict[str, Any]
    exclude_rules: list[str]

    @property
    def results_dir(self) -> str:
        return self.config["run"]["results_dir"]


@dataclass(frozen=True)
class Plan:
    results_dir: str
    logs_dir: str
    reference: str
    arms: list[str]
    seeds: list[int]
    owners: list[Run]
    runs: list[Run]


def deep_merge(base: dict, overrides: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _short_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:8]


def _without(cfg: dict, paths: list[tuple[str, ...]]) -> dict:
    """`cfg` less the keys at `paths`, and less the sections that leaves empty (an arm that only set
    `assemble.verified` must key round 0 as an arm that set nothing)."""
    out = copy.deepcopy(cfg)
    for path in paths:
        node = out
        for key in path[:-1]:
            node = node.get(key, {})
        node.pop(path[-1], None)
    return _prune_empty(out)


def _prune_empty(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    pruned = {key: _prune_empty(value) for key, value in node.items()}
    return {key: value for key, value in pruned.items() if value != {}}


def round0_key(given: dict) -> str:
    """The key of the round-0 group of a run's non-default settings (`given`). With `train.round0_min_steps`
    set, round 0 never reads `train.min_steps` (training.train.round_train_config), so that is left out too."""
    after = list(AFTER_ROUND0)
    if given.get("train", {}).get("round0_min_steps") is not None:
        after.append(("train", "min_steps"))
    return _short_hash(_without(given, after))


def plan(raw: dict[str, Any]) -> Plan:
    """Every module of the experiment in `raw` (a whole config with an `experiments` section)."""
    base = load_config(raw)
    exp = base.experiments
    if not exp.arms:
        raise ConfigError(
            "experiments.arms is empty: name the arms to compare, e.g. --configfile config/presets/paper_ablations.yaml"
        )
    base_raw = base.model_dump(mode="json", exclude={"experiments"})
    root, logs = exp.results_dir.rstrip("/"), exp.logs_dir.rstrip("/")
    owners: dict[tuple[int, str], Run] = {}
    data_owned: set[tuple[int, str]] = set()
    runs = []
    for seed in exp.seeds:
        for arm, overrides in exp.arms.items():
            cfg = deep_merge(base_raw, overrides)
            cfg["run"]["seed"] = seed
            other = cfg["train"].get("match_steps_of")
            if other in exp.arms:
                if other == arm:
                    raise ConfigError(f"experiments.arms.{arm}: train.match_steps_of names the arm itself")
                cfg["train"]["match_steps_of"] = f"{root}/arms/{other}/seed_{seed}"
            try:
                # Keys of shared folders from the values that differ from the defaults: a setting added to a
                # later version of the config does not move finished work (Snakemake still reruns what a
                # changed setting touches, through the rules' params).
                given = load_config(cfg).model_dump(mode="json", exclude_defaults=True)
            except ConfigError as err:
                raise ConfigError(f"experiments.arms.{arm}: {err}") from None
            # The problems and model of this seed; a tiny model is made beside them.
            data_key = _short_hash([seed, given.get("data"), given.get("model")])
            data_dir = f"{root}/shared/seed_{seed}/data_{data_key}"
            cfg["run"]["data_dir"] = data_dir
            if cfg["model"]["make_tiny"]:
                cfg["model"]["path"] = f"{data_dir}/model/tiny"
            given["run"] = {**given.get("run", {}), "seed": seed, "data_dir": data_dir}
            r0_key = round0_key(given)
            round0_dir = f"{root}/shared/seed_{seed}/round0_{r0_key}"
            if (seed, r0_key) not in owners:
                owner_cfg = deep_merge(
                    cfg,
                    {
                        "run": {
                            "rounds": 0,
                            "results_dir": round0_dir,
                            "round0_dir": None,
                            "logs_dir": f"{logs}/shared/seed_{seed}/round0_{r0_key}",
                        }
                    },
                )
                first = (seed, data_key) not in data_owned
                data_owned.add((seed, data_key))
                name = f"round0_{r0_key}_s{seed}"
                owners[(seed, r0_key)] = Run(name, None, seed, owner_cfg, [] if first else list(DATA_RULES))
            cfg["run"]["round0_dir"] = round0_dir
            cfg["run"]["results_dir"] = f"{root}/arms/{arm}/seed_{seed}"
            cfg["run"]["logs_dir"] = f"{logs}/arms/{arm}/seed_{seed}"
            runs.append(Run(f"{arm}_s{seed}", arm, seed, cfg, list(ROUND0_RULES)))
    reference = exp.reference or next(iter(exp.arms))
    return Plan(root, logs, reference, list(exp.arms), list(exp.seeds), list(owners.values()), runs)


def matched_steps(summary_path: str) -> int:
    """The optimiser steps of a finished run, all its rounds together (train.match_steps_of)."""
    summary = read_table(summary_path, "summary")
    steps = int(summary.unique("stage").select(pl.col("train_steps").sum()).item())
    if steps < 1:
        raise ValueError(f"{summary_path}: the run trained no steps, nothing to match")
    return steps


# ---------------------------------------------------------------------------------------------------
# Intervals over seeds

# Two-sided 95% quantiles of Student's t by degrees of freedom; past 30 the normal 1.96 (under 2% off).
_T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131]
_T975 += [2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


def t975(df: int) -> float:
    return _T975[df - 1] if df <= len(_T975) else 1.96


def mean_interval(
    values: list[float], *, bounded: bool = False
) -> tuple[float, float | None, float | None, float | None]:
    """(mean, standard deviation, 95% interval low, high) over seeds of percentages: accuracies in [0, 100]
    (`bounded`) or differences of two in [-100, 100]; no interval from one value."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, None, None, None
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = t975(n - 1) * sd / math.sqrt(n)
    # A percentage cannot leave [-100, 100] (accuracies [0, 100]): the interval is cut there, which keeps
    # its coverage (the true value is inside the bounds), rather than printed as [32.4, 110.3].
    low, high = (0.0, 100.0) if bounded else (-100.0, 100.0)
    return mean, sd, max(low, mean - half), min(high, mean + half)


# ---------------------------------------------------------------------------------------------------
# The experiment's summary and comparison


def gather(run_summaries: list[tuple[str, int, str]]) -> pl.DataFrame:
    """One row per (arm, seed, suite, stage) from each run's summary.parquet, with the compute the arm had
    spent through each stage (`total_train_steps`, `total_train_tokens`) and its last stage marked `final`."""
    parts = []
    for arm, seed, path in run_summaries:
        s = read_table(path, "summary").with_columns(arm=pl.lit(arm), seed=pl.lit(seed, pl.Int64))
        order = (
            s.select("stage")
            .unique()
            .with_columns(k=pl.col("stage").str.extract(r"round_(\d+)").cast(pl.Int64).fill_null(-1))
        )
        s = s.join(order, on="stage").sort("suite", "k")
        s = s.with_columns(
            total_train_steps=pl.col("train_steps").cum_sum().over("suite"),
            total_train_tokens=pl.col("train_tokens").cum_sum().over("suite"),
            final=pl.col("k") == pl.col("k").max(),
        ).drop("k")
        parts.append(s)
    cols = ["arm", "seed", "suite", "stage", "final", "accuracy", "n", "n_correct", "train_size"]
    cols += ["train_steps", "train_tokens", "total_train_steps", "total_train_tokens"]
    return pl.concat(parts).select(cols)


def compare(summary: pl.DataFrame, reference: str) -> pl.DataFrame:
    """Per arm and suite, the final stage's accuracy over seeds and its paired difference to the reference."""
    final = summary.filter(pl.col("final"))
    rows = []
    arms = final["arm"].unique(maintain_order=True).to_list()
    for suite in final["suite"].unique(maintain_order=True).to_list():
        ref = {r["seed"]: r["accuracy"] for r in final.filter(arm=reference, suite=suite).iter_rows(named=True)}
        for arm in arms:
            sub = final.filter(arm=arm, suite=suite).sort("seed")
            if sub.height == 0:
                continue
            acc = [100 * a for a in sub["accuracy"].to_list()]
            mean, sd, lo, hi = mean_interval(acc, bounded=True)
            diffs = [100 * (a - ref[s]) for s, a in zip(sub["seed"], sub["accuracy"], strict=True) if s in ref]
            d_mean, _, d_lo, d_hi = mean_interval(diffs) if diffs and arm != reference else (None, None, None, None)
            rows.append(
                {
                    "suite": suite,
                    "arm": arm,
                    "stage": sub["stage"][0],
                    "seeds": sub.height,
                    "mean": mean,
                    "sd": sd,
                    "ci_low": lo,
                    "ci_high": hi,
                    "diff": d_mean,
                    "diff_ci_low": d_lo,
                    "diff_ci_high": d_hi,
                    "train_steps": float(sub["total_train_steps"].mean()),
                    "train_tokens": float(sub["total_train_tokens"].mean()),
                    "n": int(sub["n"][0]),
                }
            )
    return pl.DataFrame(rows, infer_schema_length=None)


def _fmt(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def comparison_markdown(table: pl.DataFrame, reference: str) -> str:
    lines = []
    for suite in table["suite"].unique(maintain_order=True).to_list():
        sub = table.filter(suite=suite)
        seeds = sorted(set(sub["seeds"].to_list()))
        lines += [
            f"### {suite} ({sub['n'][0]} test problems; seeds per arm: {', '.join(map(str, seeds))})",
            "",
            f"| arm | stage | accuracy (mean) | sd | 95% interval | vs {reference} (paired) | 95% interval "
            "| differs? | train steps | train tokens |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in sub.iter_rows(named=True):
            interval = "-" if r["ci_low"] is None else f"[{r['ci_low']:.1f}, {r['ci_high']:.1f}]"
            if r["arm"] == reference:
                diff, d_interval, differs = "reference", "-", "-"
            else:
                diff = "-" if r["diff"] is None else f"{r['diff']:+.1f}"
                d_interval = "-" if r["diff_ci_low"] is None else f"[{r['diff_ci_low']:+.1f}, {r['diff_ci_high']:+.1f}]"
                differs = (
                    "-"
                    if r["diff_ci_low"] is None
                    else ("yes" if r["diff_ci_low"] > 0 or r["diff_ci_high"] < 0 else "no")
                )
            lines.append(
                f"| {r['arm']} | {r['stage']} | {r['mean']:.1f} | {_fmt(r['sd'])} | {interval} | {diff} | "
                f"{d_interval} | {differs} | {r['train_steps']:.0f} | {r['train_tokens']:.0f} |"
            )
        lines.append("")
    lines.append(
        "Accuracy in % at each arm's last stage; intervals are Student-t 95% intervals over seeds (cut at 0 and "
        "100%); the paired difference is taken seed by seed (arms of one seed share its problems, model and, where "
        "equal, round 0). "
        "'differs?' says whether the difference's interval excludes 0. Train steps and tokens: everything the arm "
        "trained on, all rounds together (mean over seeds)."
    )
    return "\n".join(lines) + "\n"


def plot_comparison(table: pl.DataFrame, out_png: str, reference: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    suites = table["suite"].unique(maintain_order=True).to_list()
    fig, axes = plt.subplots(1, len(suites), figsize=(max(6, 1.0 * table.height / len(suites) + 3), 4), squeeze=False)
    for ax, suite in zip(axes[0], suites, strict=True):
        sub = table.filter(suite=suite)
        x = list(range(sub.height))
        means = sub["mean"].to_list()
        low = [m - (lo if lo is not None else m) for m, lo in zip(means, sub["ci_low"].to_list(), strict=True)]
        high = [(hi if hi is not None else m) - m for m, hi in zip(means, sub["ci_high"].to_list(), strict=True)]
        colors = ["tab:orange" if a == reference else "tab:blue" for a in sub["arm"]]
        ax.bar(x, means, yerr=[low, high], capsize=4, color=colors)
        ax.set_xticks(x, sub["arm"].to_list(), rotation=35, ha="right")
        ax.set_ylabel("accuracy (%) at the last stage")
        ax.set_title(f"{suite}: mean over seeds, 95% interval")
    fig.tight_layout()
    Path(out_png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=100)
    plt.close(fig)


def summarize_experiment(
    run_summaries: list[tuple[str, int, str]], reference: str, summary_out: str, comparison_out: str, plot_out: str
) -> pl.DataFrame:
    summary = write_table(gather(run_summaries), summary_out, "experiment_summary")
    table = compare(summary, reference)
    text = comparison_markdown(table, reference)
    write_text_atomic(text, comparison_out)
    plot_comparison(table, plot_out, reference)
    log.info("comparison:\n%s", text)
    return table
