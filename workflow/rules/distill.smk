rule distill:
    input:
        # teacher.distill_pool: the teacher solves the pool too (the paper's Table 4 "teacher only").
        problems=[f"{DATA}/seed.parquet"] + ([f"{DATA}/pool.parquet"] if CFG.teacher.distill_pool else []),
    output:
        distilled=f"{round_dir(0)}/distilled.parquet",
        cost=f"{round_dir(0)}/distill_cost.parquet",
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
