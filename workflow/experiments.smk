# Experiments: every arm x seed of config `experiments` as one DAG, each run a module of the main workflow.
# Run: snakemake -s workflow/experiments.smk --profile profiles/local --configfile config/presets/paper_ablations.yaml
# Work that runs share (problems, tiny model, round 0 when equal) is made once by an owner module.
from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

from mathse.config import ConfigError
from mathse.experiments import plan

min_version("9.0")


configfile: f"{workflow.basedir}/../config/config.yaml"


# Local runs start each job in a warm process (src/mathse/jobserver.py); the modules' onstart is not called.
onstart:
    from mathse import jobserver

    jobserver.start(workflow)


# Declared before the modules, so that theirs (a single run's first page) does not replace it.
report: "report/experiments.rst"


try:
    PLAN = plan(config)
except ConfigError as err:
    raise WorkflowError(str(err)) from None
MAIN = f"{workflow.basedir}/../Snakefile"
EXP = PLAN.results_dir


# A module's rules are renamed {module}_{rule}; the profile's per-rule threads and resources (set-threads,
# set-resources: GPUs, partitions, memory) are given to the renamed rules too, so an experiment runs on SLURM
# with the same profile as one run. (Snakemake keeps them in a dict by rule name, read as rules are made.)
_RESOURCES = workflow.resource_settings._parsed_overwrite_resources
_THREADS = workflow.resource_settings._parsed_overwrite_threads
for table in (_RESOURCES, _THREADS):
    for rule_name, value in list(table.items()):
        for run in PLAN.owners + PLAN.runs:
            table.setdefault(f"{run.name}_{rule_name}", value)

# A module per owner and per run; the Snakemake API that the `module` / `use rule` statements compile to,
# called in a loop since the modules come from config.
for run in PLAN.owners + PLAN.runs:
    workflow.module(run.name, snakefile=MAIN, config=run.config)
    workflow.userule(
        rules=["*"], from_module=run.name, exclude_rules=run.exclude_rules, name_modifier=f"{run.name}_*"
    )(None)


rule experiments:
    default_target: True
    input:
        f"{EXP}/summary.parquet",
        f"{EXP}/comparison.md",
        f"{EXP}/accuracy.png",


rule experiment_summary:
    input:
        summaries=[f"{run.results_dir}/summary.parquet" for run in PLAN.runs],
    output:
        summary=f"{EXP}/summary.parquet",
        comparison=f"{EXP}/comparison.md",
        plot=report(
            f"{EXP}/accuracy.png",
            caption="report/experiment_accuracy.rst",
            category="Experiment",
            labels={"figure": "accuracy per arm with its interval"},
        ),
    log:
        f"{PLAN.logs_dir}/experiment_summary.log",
    params:
        runs=[(run.arm, run.seed) for run in PLAN.runs],
        reference=PLAN.reference,
    threads: 1
    conda:
        "../envs/mathse.yaml"
    script:
        "../scripts/experiment_summary.py"
