rule assemble:
    input:
        unpack(assemble_inputs),
    output:
        train=f"{RESULTS}/round_{{round}}/train.parquet",
        remain=f"{RESULTS}/round_{{round}}/remain.parquet",
    log:
        f"{LOGS}/assemble/round_{{round}}.log",
    benchmark:
        f"{LOGS}/benchmarks/assemble/round_{{round}}.tsv"
    params:
        assemble=config["assemble"],
    threads: 1
    conda:
        "../../envs/mathse.yaml"
    script:
        "../../scripts/assemble.py"
