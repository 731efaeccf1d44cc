rule reflect:
    input:
        judgments=reflection_judgments,
        seed=f"{RESULTS}/data/seed.parquet",
        pool=f"{RESULTS}/data/pool.parquet",
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
    threads: 1
    conda:
        "../../envs/mathse.yaml"
    script:
        "../../scripts/reflect.py"
