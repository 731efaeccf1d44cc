rule prepare:
    output:
        seed=f"{RESULTS}/data/seed.parquet",
        pool=f"{RESULTS}/data/pool.parquet",
        bench=expand(f"{RESULTS}/data/bench/{{suite}}.parquet", suite=SUITES),
        quarantine=f"{RESULTS}/data/quarantine.parquet",
    log:
        f"{LOGS}/prepare.log",
    benchmark:
        f"{LOGS}/benchmarks/prepare.tsv"
    params:
        data=config["data"],
        seed=config["run"]["seed"],
        suites=SUITES,
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
            data=config["data"],
            seed=config["run"]["seed"],
        threads: 1
        conda:
            "../../envs/mathse.yaml"
        script:
            "../../scripts/make_tiny_model.py"
