# orm.trained: build ORM data (wrong paths annotated by the teacher), fine-tune the ORM from the backbone, evaluate it on held-out paths.
rule orm_data:
    input:
        seed=f"{RESULTS}/data/seed.parquet",
        pool=f"{RESULTS}/data/pool.parquet",
        bench=expand(f"{RESULTS}/data/bench/{{suite}}.parquet", suite=SUITES),
    output:
        train=f"{ORM_DIR}/train.parquet",
        eval=f"{ORM_DIR}/eval_paths.parquet",
        cost=f"{ORM_DIR}/annotate_cost.parquet",
        quarantine=f"{ORM_DIR}/quarantine.parquet",
    log:
        f"{LOGS}/orm_data.log",
    benchmark:
        f"{LOGS}/benchmarks/orm_data.tsv"
    params:
        orm=config["orm"],
        teacher=config["teacher"],
        answer_check=config["answer_check"],
        seed=config["run"]["seed"],
    threads: 1
    conda:
        "../../envs/mathse.yaml"
    script:
        "../../scripts/orm_data.py"


rule orm_train:
    input:
        train=f"{ORM_DIR}/train.parquet",
        model=MODEL,
    output:
        directory(f"{ORM_DIR}/adapter"),
    log:
        f"{LOGS}/orm_train.log",
    benchmark:
        f"{LOGS}/benchmarks/orm_train.tsv"
    params:
        model=config["model"],
        train=config["orm"]["train"],
        seed=config["run"]["seed"],
    threads: 2
    conda:
        "../../envs/mathse.yaml"
    script:
        "../../scripts/orm_train.py"


rule orm_evaluate:
    input:
        eval=f"{ORM_DIR}/eval_paths.parquet",
        model=MODEL,
        weights=f"{ORM_DIR}/adapter",
    output:
        scores=f"{ORM_DIR}/eval.parquet",
        table=f"{ORM_DIR}/eval.md",
    log:
        f"{LOGS}/orm_evaluate.log",
    benchmark:
        f"{LOGS}/benchmarks/orm_evaluate.tsv"
    params:
        orm=config["orm"],
        answer_check=config["answer_check"],
    threads: 1
    conda:
        "../../envs/mathse.yaml"
    script:
        "../../scripts/orm_evaluate.py"
