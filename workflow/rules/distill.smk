rule distill:
    input:
        seed=f"{RESULTS}/data/seed.parquet",
    output:
        distilled=f"{RESULTS}/round_0/distilled.parquet",
        cost=f"{RESULTS}/round_0/distill_cost.parquet",
    log:
        f"{LOGS}/distill/round_0.log",
    benchmark:
        f"{LOGS}/benchmarks/distill/round_0.tsv"
    params:
        teacher=config["teacher"],
        answer_check=config["answer_check"],
        seed=config["run"]["seed"],
    threads: 1
    conda:
        "../../envs/mathse.yaml"
    script:
        "../../scripts/distill.py"
