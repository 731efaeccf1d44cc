rule prepare:
    input:
        sources=training_source_files(),
    output:
        seed=f"{RESULTS}/data/seed.parquet",
        pool=f"{RESULTS}/data/pool.parquet",
        bench=expand(f"{RESULTS}/data/bench/{{suite}}.parquet", suite=PROCEDURAL_SUITES),
        quarantine=f"{RESULTS}/data/quarantine.parquet",
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
            seed=f"{RESULTS}/data/seed.parquet",
            pool=f"{RESULTS}/data/pool.parquet",
        output:
            problems=f"{RESULTS}/data/bench/{{suite}}.parquet",
            quarantine=f"{RESULTS}/data/bench/{{suite}}.quarantine.jsonl",
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
