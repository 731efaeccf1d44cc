# The report's figures and example gallery; `snakemake --report results/report.html` embeds them
# (captions in workflow/report/).


rule plots:
    input:
        summary=f"{RESULTS}/summary.parquet",
        scores=score_files(),
        train=round_files("train.parquet", range(LAST + 1)),
        remain=round_files("remain.parquet", range(LAST + 1)),
        judgments=expand(f"{RESULTS}/round_{{round}}/judgments.parquet", round=range(1, ROUNDS + 1)),
        pool=f"{DATA}/pool.parquet",
        cost=api_cost_files(),
    output:
        table=f"{REPORT}/summary.rst",
        accuracy=report(
            f"{REPORT}/accuracy.png",
            caption="../report/accuracy.rst",
            category="1. Accuracy",
            labels={"figure": "accuracy per stage and suite"},
        ),
        transitions=report(
            f"{REPORT}/transitions.png",
            caption="../report/transitions.rst",
            category="1. Accuracy",
            labels={"figure": "transitions between stages"},
        ),
        training=report(
            f"{REPORT}/training.png",
            caption="../report/training.rst",
            category="2. Self-evolution",
            labels={"figure": "training set by origin"},
        ),
        pool=report(
            f"{REPORT}/pool.png",
            caption="../report/pool.rst",
            category="2. Self-evolution",
            labels={"figure": "remaining pool"},
        ),
        pass_at_k=report(
            f"{REPORT}/pass_at_k.png",
            caption="../report/pass_at_k.rst",
            category="2. Self-evolution",
            labels={"figure": "pass@k of the rollouts"},
        ),
        orm=report(
            f"{REPORT}/orm.png",
            caption="../report/orm.rst",
            category="3. ORM",
            labels={"figure": "verdicts and agreement with math-verify"},
        ),
        runtimes=report(
            f"{REPORT}/runtimes.png",
            caption="../report/runtimes.rst",
            category="5. Runtimes",
            labels={"figure": "runtime per rule"},
        ),
        cost=report(
            f"{REPORT}/api_cost.html",
            caption="../report/api_cost.rst",
            category="6. API use",
            labels={"table": "teacher and judge API use per round"},
        ),
    log:
        f"{LOGS}/plots.log",
    benchmark:
        f"{LOGS}/benchmarks/plots.tsv"
    params:
        # Read when the rule runs: every other job's benchmark file is written by then.
        benchmarks=f"{LOGS}/benchmarks",
    threads: 1
    conda:
        "../../envs/mathse.yaml"
    script:
        "../../scripts/plots.py"


rule curves:
    input:
        summary=f"{RESULTS}/summary.parquet",
        adapters=round_files("adapter", range(LAST + 1)),
        stats=generation_stats_files(),
    output:
        curves=report(
            f"{REPORT}/curves.png",
            caption="../report/curves.rst",
            category="2. Self-evolution",
            labels={"figure": "training loss per round and accuracy"},
        ),
        generation=report(
            f"{REPORT}/generation.png",
            caption="../report/generation.rst",
            category="5. Runtimes",
            labels={"figure": "generation throughput and cut paths"},
        ),
    log:
        f"{LOGS}/curves.log",
    benchmark:
        f"{LOGS}/benchmarks/curves.tsv"
    threads: 1
    conda:
        "../../envs/mathse.yaml"
    script:
        "../../scripts/curves.py"


rule gallery:
    input:
        judgments=f"{RESULTS}/round_{{round}}/judgments.parquet",
        reflections=gallery_reflections,
        seed=f"{DATA}/seed.parquet",
        pool=f"{DATA}/pool.parquet",
    output:
        report(
            f"{REPORT}/gallery/round_{{round}}.html",
            caption="../report/gallery.rst",
            category="4. Examples",
            labels={"round": "{round}"},
        ),
    log:
        f"{LOGS}/gallery/round_{{round}}.log",
    benchmark:
        f"{LOGS}/benchmarks/gallery/round_{{round}}.tsv"
    params:
        n_examples=6,
    threads: 1
    conda:
        "../../envs/mathse.yaml"
    script:
        "../../scripts/gallery.py"

