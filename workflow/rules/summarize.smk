rule summarize:
    input:
        scores=score_files(),
        train=round_files("train.parquet", range(LAST + 1)),
        quarantine=f"{DATA}/quarantine.parquet",
        adapters=round_files("adapter", range(LAST + 1)),
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
