rule train:
    input:
        train=f"{RESULTS}/round_{{round}}/train.parquet",
        model=MODEL,
        init=init_weights,
        match=matched_run_summary,
    output:
        directory(f"{RESULTS}/round_{{round}}/adapter"),
    log:
        f"{LOGS}/train/round_{{round}}.log",
    benchmark:
        f"{LOGS}/benchmarks/train/round_{{round}}.tsv"
    params:
        model=config["model"],
        train=TRAIN_SETTINGS,
        prompt_version=config["rollout"]["prompt_version"],
        seed=config["run"]["seed"],
    threads: 2
    conda:
        "../../envs/mathse.yaml"
    script:
        "../../scripts/train.py"
