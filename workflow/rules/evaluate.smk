rule evaluate:
    input:
        suite=f"{DATA}/bench/{{suite}}.parquet",
        model=MODEL,
        weights=stage_weights,
    output:
        f"{RESULTS}/{{stage}}/scores/{{suite}}.parquet",
        stats=f"{RESULTS}/{{stage}}/evaluate_stats/{{suite}}.parquet",
    log:
        f"{LOGS}/evaluate/{{stage}}_{{suite}}.log",
    benchmark:
        f"{LOGS}/benchmarks/evaluate/{{stage}}_{{suite}}.tsv"
    params:
        model=config["model"],
        eval=EVAL_SETTINGS,
        answer_check=config["answer_check"],
        prompt_version=config["rollout"]["prompt_version"],
        scoring=suite_scoring,
        seed=config["run"]["seed"],
        vllm=vllm_settings(CFG.eval.backend),
    threads: 1
    conda:
        generation_env(CFG.eval.backend)
    script:
        "../../scripts/evaluate.py"
