# Config normalisation and the input functions that link round r to round r-1.
import glob
import re
from pathlib import Path

from snakemake.exceptions import WorkflowError

from mathse.config import MONITORING, ConfigError, load_config

try:
    CFG = load_config(config)
except ConfigError as err:
    raise WorkflowError(str(err)) from None
# Rules read their section through params, with every default filled in, so that a changed setting
# reruns exactly the rules that use it.
config.update(CFG.model_dump(mode="json"))

RESULTS = CFG.run.results_dir
# The train rules' settings without those that only watch a run (train.report_to, ...): adding a tracker
# retrains nothing. The scripts read those, and run.name, from the config itself.
TRAIN_SETTINGS = {k: v for k, v in config["train"].items() if k not in MONITORING}
ORM_TRAIN_SETTINGS = {k: v for k, v in config["orm"]["train"].items() if k not in MONITORING}
# An experiment's runs share the prepared problems (and the tiny model, model.path) of their seed, and
# base + round 0 when those settings are equal: the folders of those stages may lie outside RESULTS.
DATA = CFG.run.data_dir or f"{RESULTS}/data"
ROUND0 = CFG.run.round0_dir or RESULTS
LOGS = CFG.run.logs_dir
ROUNDS = CFG.run.rounds
# reflection.schedule: final (the paper's Algorithm 1) adds a stage of its own after round R: the teacher
# reflects on the wrong paths of all rounds, and the model trains on D_R plus the accepted reflections. It is
# round R + 1 here (no rollouts), so that the distilled, self-evolved and reflected models are rows of one summary.
FINAL_REFLECTION = CFG.reflection.schedule == "final" and ROUNDS >= 1
LAST = ROUNDS + 1 if FINAL_REFLECTION else ROUNDS
SUITES = CFG.eval.suites
# Suites imported from local benchmark files; the others are drawn by the procedural generator.
BENCHMARKS = {name: CFG.data.benchmarks[name] for name in SUITES if name in CFG.data.benchmarks}
PROCEDURAL_SUITES = [s for s in SUITES if s not in BENCHMARKS]
# The generator's settings without the benchmark ones: declaring a benchmark must not regenerate the pool
# (and so retrain every round).
PROCEDURAL_DATA = CFG.data.model_dump(mode="json", exclude={"benchmarks", "contamination"})
# Evaluation settings without the suite list: adding a suite must not re-evaluate the others.
EVAL_SETTINGS = CFG.eval.model_dump(mode="json", exclude={"suites"})
MODEL = CFG.model.path
REPORT = f"{RESULTS}/report"
ORM_DIR = f"{RESULTS}/orm"
# The trained ORM starts from a tiny model of its own (orm.tiny, tiny demo only) or from the backbone.
ORM_BASE = f"{ORM_DIR}/model" if CFG.orm.trained and CFG.orm.own_model and CFG.model.make_tiny else MODEL
# The judge uses the ORM trained in this run when it is a local model judge.
ORM_WEIGHTS = (
    f"{ORM_DIR}/adapter"
    if CFG.orm.trained and CFG.orm.backend == "model" and CFG.orm.transport == "hf"
    else None
)
# What the judge and reflect rules read of the orm section (not how a trained ORM trains: its weights are their input).
JUDGE_SETTINGS = CFG.orm.judging()
# The engine of a local model judge (orm.hf.backend); "rule" for the rule ORM and the openai transport.
JUDGE_ENGINE = CFG.orm.hf.backend if CFG.orm.backend == "model" and CFG.orm.transport == "hf" else "rule"
STAGES = ["base"] + [f"round_{r}" for r in range(LAST + 1)]

if not CFG.model.make_tiny and not Path(MODEL).is_dir():
    raise WorkflowError(f"model.path: {MODEL!r} does not exist (set model.make_tiny: true to create a tiny model)")


def round_dir(r):
    return f"{ROUND0}/round_0" if r == 0 else f"{RESULTS}/round_{r}"


def stage_dir(stage):
    """base and round 0 live in ROUND0 (shared by an experiment's arms), later rounds in RESULTS."""
    return f"{ROUND0}/{stage}" if stage in ("base", "round_0") else f"{RESULTS}/{stage}"


def score_files():
    return [f"{stage_dir(stage)}/scores/{suite}.parquet" for stage in STAGES for suite in SUITES]


def generation_stats_files():
    """The generation_stats of every rollout (rounds 1..R) and evaluate job."""
    files = [f"{round_dir(r)}/rollout_stats.parquet" for r in range(1, ROUNDS + 1)]
    return files + [f"{stage_dir(stage)}/evaluate_stats/{suite}.parquet" for stage in STAGES for suite in SUITES]


def round_files(name, rounds):
    return [f"{round_dir(r)}/{name}" for r in rounds]


def previous_round(wildcards):
    """Round r reads round r-1's model and pool; round 0 has no previous round."""
    r = int(wildcards.round)
    if r < 1:
        raise WorkflowError(f"round {r} has no previous round (rollouts start at round 1)")
    return r - 1


def previous_adapter(wildcards):
    return f"{round_dir(previous_round(wildcards))}/adapter"


def previous_remain(wildcards):
    return f"{round_dir(previous_round(wildcards))}/remain.parquet"


def reflects_in(r):
    """Does round r run the reflect rule (reflection.schedule)?"""
    schedule = CFG.reflection.schedule
    if schedule == "every_round":
        return 1 <= r <= ROUNDS
    return FINAL_REFLECTION and r == LAST


def reflection_judgments(wildcards):
    """every_round: this round's wrong paths; final: the wrong paths of every round (Algorithm 1)."""
    r = int(wildcards.round)
    rounds = range(1, ROUNDS + 1) if CFG.reflection.schedule == "final" else [r]
    return [f"{round_dir(i)}/judgments.parquet" for i in rounds]


def assemble_inputs(wildcards):
    r = int(wildcards.round)
    problems = {"seed": f"{DATA}/seed.parquet", "pool": f"{DATA}/pool.parquet"}
    if r == 0:
        return {"distilled": f"{round_dir(0)}/distilled.parquet", **problems}
    inputs = {
        "prev_train": f"{round_dir(r - 1)}/train.parquet",
        "prev_remain": f"{round_dir(r - 1)}/remain.parquet",
        **problems,
    }
    if r <= ROUNDS:  # the final reflection stage samples nothing
        inputs["judgments"] = f"{round_dir(r)}/judgments.parquet"
    if reflects_in(r):
        inputs["reflections"] = f"{round_dir(r)}/reflections.parquet"
    return inputs


def init_weights(wildcards):
    """train.init: previous starts round r from round r-1's weights; base (and round 0) from the backbone."""
    r = int(wildcards.round)
    return f"{round_dir(r - 1)}/adapter" if r >= 1 and CFG.train.init == "previous" else []


def matched_run_summary(wildcards):
    """train.match_steps_of: round 0 reads the other run's summary for the steps it trained (equal compute)."""
    other = CFG.train.match_steps_of
    return [f"{other}/summary.parquet"] if other and int(wildcards.round) == 0 else []


def orm_model(wildcards):
    """The local ORM checkpoint the judge loads (orm.backend: model, transport: hf); none otherwise."""
    orm = CFG.orm
    if orm.backend != "model" or orm.transport != "hf":
        return []
    if ORM_WEIGHTS:
        return [ORM_BASE, ORM_WEIGHTS]
    return [orm.hf.path or MODEL]


def orm_rollout_problems(wildcards):
    """orm.paths sampled: the seed part (training paths) or a suite's problems (held-out paths)."""
    if wildcards.split == "seed":
        return f"{DATA}/seed.parquet"
    return f"{DATA}/bench/{wildcards.split.removeprefix('suite_')}.parquet"


def orm_data_rollouts(wildcards):
    """orm.paths sampled: the round-0 model's paths, seed part first, then each suite's; none otherwise."""
    if CFG.orm.paths != "sampled":
        return []
    return [f"{ORM_DIR}/rollouts/{split}.parquet" for split in ["seed"] + [f"suite_{s}" for s in SUITES]]


# The ORM's sampling: the rollout settings with orm.samples_per_problem paths per problem.
ORM_ROLLOUT = {**config["rollout"], "num_samples": CFG.orm.samples_per_problem}


def vllm_settings(backend):
    """The vllm section for a rule whose backend is vllm, else None (so that it reruns nothing else)."""
    return config["vllm"] if backend == "vllm" else None


def generation_env(backend):
    """The conda environment of a generating rule: vLLM's for the vllm backend (paths relative to rules/)."""
    return "../../envs/vllm.yaml" if backend == "vllm" else "../../envs/mathse.yaml"


def stage_weights(wildcards):
    return [] if wildcards.stage == "base" else f"{stage_dir(wildcards.stage)}/adapter"


def all_artifacts():
    """Every round's artifacts (the design's table), so that a deleted one is remade."""
    files = [f"{round_dir(0)}/{name}" for name in ("distilled.parquet", "distill_cost.parquet")]
    for r in range(LAST + 1):
        files += [f"{round_dir(r)}/{name}" for name in ("train.parquet", "remain.parquet", "adapter")]
        if 1 <= r <= ROUNDS:
            names = ("rollouts.parquet", "judgments.parquet", "judge_stats.parquet", "judge_cost.parquet")
            files += [f"{round_dir(r)}/{name}" for name in names]
        if reflects_in(r):
            files += [f"{round_dir(r)}/{name}" for name in ("reflections.parquet", "reflect_cost.parquet")]
    files += score_files() + generation_stats_files()
    if CFG.orm.trained:
        files += [f"{ORM_DIR}/{name}" for name in ("adapter", "eval.parquet", "eval.md")]
    return files


def gallery_reflections(wildcards):
    """The reflections of round r's wrong paths: made in round r (every_round), in the last round (final)."""
    r = int(wildcards.round)
    made_in = [i for i in range(r, LAST + 1) if reflects_in(i)][:1]
    return [f"{round_dir(i)}/reflections.parquet" for i in made_in]


def report_files():
    """The figures and each round's gallery (targets of rule all, so that --report finds them)."""
    figures = ["summary.rst"] + [f"{name}.png" for name in ("accuracy", "transitions", "training", "pool")]
    figures += [f"{name}.png" for name in ("pass_at_k", "orm", "runtimes", "curves", "generation")]
    figures += ["api_cost.html"]
    return [f"{REPORT}/{name}" for name in figures] + [f"{REPORT}/gallery/round_{r}.html" for r in range(1, ROUNDS + 1)]


def benchmark_source(wildcards):
    """The local files a benchmark suite is imported from (a glob expanded; missing files fail the DAG)."""
    path = BENCHMARKS[wildcards.suite].path
    if any(c in path for c in "*?["):
        return sorted(glob.glob(path, recursive=True)) or [path]
    return path


def training_source_files():
    """data.source files: every file the seed part and pool are imported from (missing files fail the DAG)."""
    files = []
    for src in [*CFG.data.seed_sources.values(), *CFG.data.pool_sources.values()]:
        matches = sorted(glob.glob(src.path, recursive=True)) if any(c in src.path for c in "*?[") else []
        files += matches or [src.path]
    return files


def benchmark_params(wildcards):
    return BENCHMARKS[wildcards.suite].model_dump(mode="json")


def suite_scoring(wildcards):
    return CFG.suite_scoring(wildcards.suite)


def api_cost_files():
    """The api_cost artifact of every distill, judge, reflect (and ORM annotation) job, per round."""
    files = [f"{round_dir(0)}/distill_cost.parquet"]
    if CFG.orm.trained:
        files.append(f"{ORM_DIR}/annotate_cost.parquet")
    for r in range(1, LAST + 1):
        if r <= ROUNDS:
            files.append(f"{round_dir(r)}/judge_cost.parquet")
        if reflects_in(r):
            files.append(f"{round_dir(r)}/reflect_cost.parquet")
    return files
