rule reflect:
    input:
        judgments=reflection_judgments,
        seed=f"{DATA}/seed.parquet",
        pool=f"{DATA}/pool.parquet",
        model=orm_model,
    output:
        reflections=f"{RESULTS}/round_{{round}}/reflections.parquet",
        cost=f"{RESULTS}/round_{{round}}/reflect_cost.parquet",
    log:
        f"{LOGS}/reflect/round_{{round}}.log",
    benchmark:
        f"{LOGS}/benchmarks/reflect/round_{{round}}.tsv"
    params:
        teacher=config["teacher"],
        reflection=config["reflection"],
        answer_check=config["answer_check"],
        seed=config["run"]["seed"],
        # The rewrites are re-checked by the configured judge, as the judge rule runs it.
        orm=JUDGE_SETTINGS,
        backbone=MODEL,
        orm_weights=ORM_WEIGHTS,
        orm_base=ORM_BASE if ORM_WEIGHTS else None,
        vllm=vllm_settings(JUDGE_ENGINE),
    threads: 1
    conda:
        generation_env(JUDGE_ENGINE)
    script:
        "../../scripts/reflect.py"
