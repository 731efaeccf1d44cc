rule judge:
    input:
        rollouts=f"{RESULTS}/round_{{round}}/rollouts.parquet",
        problems=previous_remain,
    output:
        f"{RESULTS}/round_{{round}}/judgments.parquet",
    log:
        f"{LOGS}/judge/round_{{round}}.log",
    benchmark:
        f"{LOGS}/benchmarks/judge/round_{{round}}.tsv"
    params:
        orm=config["orm"],
    threads: 1
    conda:
        "../../envs/mathse.yaml"
    script:
        "../../scripts/judge.py"
