if CFG.rollout.parallel_jobs == 1:

    rule rollout:
        input:
            problems=previous_remain,
            model=MODEL,
            weights=previous_adapter,
        output:
            f"{RESULTS}/round_{{round}}/rollouts.parquet",
            stats=f"{RESULTS}/round_{{round}}/rollout_stats.parquet",
        log:
            f"{LOGS}/rollout/round_{{round}}.log",
        benchmark:
            f"{LOGS}/benchmarks/rollout/round_{{round}}.tsv"
        params:
            model=config["model"],
            rollout=config["rollout"],
            seed=config["run"]["seed"],
            vllm=vllm_settings(CFG.rollout.backend),
        threads: 2
        conda:
            generation_env(CFG.rollout.backend)
        script:
            "../../scripts/rollout.py"

else:
    # rollout.parallel_jobs > 1: each part takes every n-th shard (one GPU each), then the parts are joined.
    rule rollout_part:
        input:
            problems=previous_remain,
            model=MODEL,
            weights=previous_adapter,
        output:
            temp(f"{RESULTS}/round_{{round}}/rollouts.part{{part}}.parquet"),
            stats=temp(f"{RESULTS}/round_{{round}}/rollout_stats.part{{part}}.parquet"),
        log:
            f"{LOGS}/rollout/round_{{round}}.part{{part}}.log",
        benchmark:
            f"{LOGS}/benchmarks/rollout/round_{{round}}.part{{part}}.tsv"
        wildcard_constraints:
            part=r"\d+",
        params:
            model=config["model"],
            rollout=config["rollout"],
            seed=config["run"]["seed"],
            parts=CFG.rollout.parallel_jobs,
            vllm=vllm_settings(CFG.rollout.backend),
        threads: 2
        conda:
            generation_env(CFG.rollout.backend)
        script:
            "../../scripts/rollout.py"

    rule join_rollouts:
        input:
            problems=previous_remain,
            parts=expand(
                f"{RESULTS}/round_{{{{round}}}}/rollouts.part{{part}}.parquet",
                part=range(CFG.rollout.parallel_jobs),
            ),
            stats=expand(
                f"{RESULTS}/round_{{{{round}}}}/rollout_stats.part{{part}}.parquet",
                part=range(CFG.rollout.parallel_jobs),
            ),
        output:
            f"{RESULTS}/round_{{round}}/rollouts.parquet",
            stats=f"{RESULTS}/round_{{round}}/rollout_stats.parquet",
        log:
            f"{LOGS}/rollout/round_{{round}}.log",
        threads: 1
        conda:
            "../../envs/mathse.yaml"
        script:
            "../../scripts/join_rollouts.py"
