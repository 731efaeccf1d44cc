rule summarize:
    input:
        scores=expand(f"{RESULTS}/{{stage}}/scores/{{suite}}.parquet", stage=STAGES, suite=SUITES),
        train=expand(f"{RESULTS}/round_{{round}}/train.parquet", round=range(ROUNDS + 1)),
        quarantine=f"{RESULTS}/data/quarantine.parquet",
    output:
        summary=f"{RESULTS}/summary.parquet",
        table=f"{RESULTS}/summary.md",
    log:
        f"{LOGS}/summarize.log",
    benchmark:
        f"{LOGS}/benchmarks/summarize.tsv"
    threads: 1
    conda:
        "../../envs/mathse.yaml"
    script:
        "../../scripts/summarize.py"
