rule rollout:
    input:
        problems=previous_remain,
        model=MODEL,
        weights=previous_adapter,
    output:
        f"{RESULTS}/round_{{round}}/rollouts.parquet",
    log:
        f"{LOGS}/rollout/round_{{round}}.log",
    benchmark:
        f"{LOGS}/benchmarks/rollout/round_{{round}}.tsv"
    params:
        model=config["model"],
        rollout=config["rollout"],
        seed=config["run"]["seed"],
    threads: 2
    conda:
        "../../envs/mathse.yaml"
    script:
        "../../scripts/rollout.py"
