rule prepare:
    input:
        sources=training_source_files(),
    output:
        seed=f"{DATA}/seed.parquet",
        pool=f"{DATA}/pool.parquet",
        bench=expand(f"{DATA}/bench/{{suite}}.parquet", suite=PROCEDURAL_SUITES),
        quarantine=f"{DATA}/quarantine.parquet",
    log:
        f"{LOGS}/prepare.log",
    benchmark:
        f"{LOGS}/benchmarks/prepare.tsv"
    params:
        data=PROCEDURAL_DATA,
        seed=config["run"]["seed"],
        suites=PROCEDURAL_SUITES,
    threads: 1
    conda:
        "../../envs/mathse.yaml"
    script:
        "../../scripts/prepare.py"


if CFG.model.make_tiny:

    rule make_tiny_model:
        output:
            directory(MODEL),
        log:
            f"{LOGS}/make_tiny_model.log",
        benchmark:
            f"{LOGS}/benchmarks/make_tiny_model.tsv"
        params:
            tiny=config["model"]["tiny"],
            data=PROCEDURAL_DATA,
            seed=config["run"]["seed"],
        threads: 1
        conda:
            "../../envs/mathse.yaml"
        script:
            "../../scripts/make_tiny_model.py"


if BENCHMARKS:

    # A benchmark from local files, checked for contamination against the seed part and pool.
    rule import_benchmark:
        input:
            src=benchmark_source,
            seed=f"{DATA}/seed.parquet",
            pool=f"{DATA}/pool.parquet",
        output:
            problems=f"{DATA}/bench/{{suite}}.parquet",
            quarantine=f"{DATA}/bench/{{suite}}.quarantine.jsonl",
        log:
            f"{LOGS}/import_benchmark/{{suite}}.log",
        benchmark:
            f"{LOGS}/benchmarks/import_benchmark/{{suite}}.tsv"
        wildcard_constraints:
            suite="|".join(re.escape(name) for name in BENCHMARKS),
        params:
            benchmark=benchmark_params,
            contamination=config["data"]["contamination"],
        threads: 1
        conda:
            "../../envs/mathse.yaml"
        script:
            "../../scripts/import_benchmark.py"
