# MathSE: distill (round 0), then R rounds of rollout -> judge -> reflect -> assemble -> train,
# with every stage's model scored on the held-out suites. Run: snakemake --profile profiles/local
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: f"{workflow.basedir}/config/config.yaml"


report: "workflow/report/workflow.rst"


validate(config, "workflow/schemas/config.schema.json")


# Local runs start each job in a fork of a warm process that has imported torch and transformers once
# (src/mathse/jobserver.py; MATHSE_JOB_SERVER=off turns it off). Not on SLURM, not in a dry run.
onstart:
    from mathse import jobserver

    jobserver.start(workflow)


wildcard_constraints:
    round=r"\d+",
    suite=r"[A-Za-z0-9_\-]+",
    stage=r"base|round_\d+",


include: "workflow/rules/common.smk"
include: "workflow/rules/prepare.smk"
include: "workflow/rules/distill.smk"
include: "workflow/rules/rollout.smk"
include: "workflow/rules/judge.smk"
include: "workflow/rules/reflect.smk"
include: "workflow/rules/assemble.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/summarize.smk"
include: "workflow/rules/report.smk"


if CFG.orm.trained:

    include: "workflow/rules/orm.smk"


# Every artifact is a target, not only the summary: Snakemake does not remake a deleted intermediate
# file whose consumers are up to date, and these are the files users open.
rule all:
    input:
        f"{RESULTS}/summary.parquet",
        all_artifacts(),
        report_files(),
