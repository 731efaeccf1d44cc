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
        vllm=vllm_settings(CFG.rollout.backend),
    threads: 2
    conda:
        generation_env(CFG.rollout.backend)
    script:
        "../../scripts/rollout.py"
