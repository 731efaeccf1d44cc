if CFG.orm.own_model and CFG.model.make_tiny:

    # The tiny ORM's own model: its shape (orm.tiny) and a tokenizer that knows the ORM's words.
    rule make_orm_model:
        output:
            directory(f"{ORM_DIR}/model"),
        log:
            f"{LOGS}/make_orm_model.log",
        benchmark:
            f"{LOGS}/benchmarks/make_orm_model.tsv"
        params:
            tiny=config["orm"]["tiny"],
            data=PROCEDURAL_DATA,
            prompt_version=config["orm"]["prompt_version"],
            seed=config["run"]["seed"],
        threads: 1
        conda:
            "../../envs/mathse.yaml"
        script:
            "../../scripts/make_orm_model.py"


if CFG.orm.paths == "sampled":

    # The ORM's paths as the paper makes them: the round-0 model's own samples, on the seed part (training)
    # and on each suite's problems (held out).
    rule orm_rollout:
        input:
            problems=orm_rollout_problems,
            model=MODEL,
            weights=f"{round_dir(0)}/adapter",
        output:
            f"{ORM_DIR}/rollouts/{{split}}.parquet",
        log:
            f"{LOGS}/orm_rollout/{{split}}.log",
        benchmark:
            f"{LOGS}/benchmarks/orm_rollout/{{split}}.tsv"
        wildcard_constraints:
            split=r"seed|suite_[A-Za-z0-9_\-]+",
        params:
            model=config["model"],
            rollout=ORM_ROLLOUT,
            seed=config["run"]["seed"],
            vllm=vllm_settings(CFG.rollout.backend),
        threads: 2
        conda:
            generation_env(CFG.rollout.backend)
        script:
            "../../scripts/orm_rollout.py"


# orm.trained: build ORM data (wrong paths annotated by the teacher), fine-tune the ORM from the backbone, evaluate it on held-out paths.
rule orm_data:
    input:
        seed=f"{DATA}/seed.parquet",
        pool=f"{DATA}/pool.parquet",
        bench=expand(f"{DATA}/bench/{{suite}}.parquet", suite=SUITES),
        rollouts=orm_data_rollouts,
    output:
        train=f"{ORM_DIR}/train.parquet",
        eval=f"{ORM_DIR}/eval_paths.parquet",
        cost=f"{ORM_DIR}/annotate_cost.parquet",
        quarantine=f"{ORM_DIR}/quarantine.parquet",
        binary=f"{ORM_DIR}/train_binary.parquet",
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
        model=ORM_BASE,
    output:
        directory(f"{ORM_DIR}/adapter"),
    log:
        f"{LOGS}/orm_train.log",
    benchmark:
        f"{LOGS}/benchmarks/orm_train.tsv"
    params:
        model=config["model"],
        train=ORM_TRAIN_SETTINGS,
        final_line_steps=config["orm"]["final_line_steps"] if config["orm"]["final_line_examples"] else 0,
        final_line_batch_size=config["orm"]["final_line_batch_size"],
        seed=config["run"]["seed"],
    threads: 2
    conda:
        "../../envs/mathse.yaml"
    script:
        "../../scripts/orm_train.py"


rule orm_evaluate:
    input:
        eval=f"{ORM_DIR}/eval_paths.parquet",
        model=ORM_BASE,
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


# The paper's Table 5: a label-only ORM (status only) trained on the same paths, scored on the same
# held-out paths as the step-and-analysis ORM: snakemake results/orm/table5.md.
use rule orm_train as orm_train_binary with:
    input:
        train=f"{ORM_DIR}/train_binary.parquet",
        model=ORM_BASE,
    output:
        directory(f"{ORM_DIR}/binary/adapter"),
    log:
        f"{LOGS}/orm_train_binary.log",
    benchmark:
        f"{LOGS}/benchmarks/orm_train_binary.tsv"


use rule orm_evaluate as orm_evaluate_binary with:
    input:
        eval=f"{ORM_DIR}/eval_paths.parquet",
        model=ORM_BASE,
        weights=f"{ORM_DIR}/binary/adapter",
    output:
        scores=f"{ORM_DIR}/binary/eval.parquet",
        table=f"{ORM_DIR}/binary/eval.md",
    log:
        f"{LOGS}/orm_evaluate_binary.log",
    benchmark:
        f"{LOGS}/benchmarks/orm_evaluate_binary.tsv"


rule orm_table5:
    input:
        full=f"{ORM_DIR}/eval.parquet",
        binary=f"{ORM_DIR}/binary/eval.parquet",
        full_weights=f"{ORM_DIR}/adapter",
        binary_weights=f"{ORM_DIR}/binary/adapter",
    output:
        f"{ORM_DIR}/table5.md",
    log:
        f"{LOGS}/orm_table5.log",
    threads: 1
    conda:
        "../../envs/mathse.yaml"
    script:
        "../../scripts/orm_table5.py"
