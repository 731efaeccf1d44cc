rule judge:
    input:
        rollouts=f"{RESULTS}/round_{{round}}/rollouts.parquet",
        problems=previous_remain,
        model=orm_model,
    output:
        judgments=f"{RESULTS}/round_{{round}}/judgments.parquet",
        stats=f"{RESULTS}/round_{{round}}/judge_stats.parquet",
        cost=f"{RESULTS}/round_{{round}}/judge_cost.parquet",
    log:
        f"{LOGS}/judge/round_{{round}}.log",
    benchmark:
        f"{LOGS}/benchmarks/judge/round_{{round}}.tsv"
    params:
        orm=JUDGE_SETTINGS,
        answer_check=config["answer_check"],
        backbone=MODEL,
        orm_weights=ORM_WEIGHTS,
        orm_base=ORM_BASE if ORM_WEIGHTS else None,
        vllm=vllm_settings(JUDGE_ENGINE),
    threads: 1
    conda:
        generation_env(JUDGE_ENGINE)
    script:
        "../../scripts/judge.py"
