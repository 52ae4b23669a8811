# Capability retention with lm-evaluation-harness, only when the config has an `lm_eval`
# block (steering/pipeline/lm_eval_jobs.py): per model one job on the untrained base model, per chosen
# run (a swept variant: its point selected on validation, unless `points: all`) and seed one
# job on its checkpoint; then the long table and the retention table (each method minus the
# base model per task). Without the block no job of this file runs (LM_EVAL_TABLES is empty).
from steering.pipeline import lm_eval_jobs

LM_EVAL_JOBS = lm_eval_jobs.jobs(GRID)
LM_EVAL_TABLES = (
    ["results/tables/lm_eval.csv", "results/tables/lm_eval_retention.csv"] if LM_EVAL_JOBS else []
)


rule lm_eval_base:
    input:
        model=jobs.model_input(GRID),
    output:
        "results/lm_eval/{model}/base.json",
    params:
        args=lambda w: lm_eval_jobs.base_args(GRID, w.model),
    resources:
        gpu=placement.per_job(GRID, placement.eval_gpus),
        mem_mb=RESOURCES.get("evaluate", {}).get("mem_mb") or placement.per_job(GRID, jobs.eval_mem_mb),
        runtime=RESOURCES.get("evaluate", {}).get("runtime", 120),
    conda:
        "../envs/steering.yaml"
    log:
        "results/logs/lm_eval/{model}/base.log",
    benchmark:
        "results/benchmarks/lm_eval/{model}/base.tsv"
    shell:
        "python -m steering.runtime.gpu_lease {resources.gpu} --"
        " python scripts/lm_eval_run.py {params.args} > {log:q} 2>&1"


rule lm_eval:
    input:
        lambda w: lm_eval_jobs.inputs(GRID, w.model, w.dataset, w.name, w.seed),
    output:
        "results/lm_eval/{model}/{dataset}/{name}/seed{seed}.json",
    wildcard_constraints:
        name=jobs.wildcard_pattern(lm_eval_jobs.names(GRID) or ["-"]),
    params:
        args=lambda w: lm_eval_jobs.run_args(GRID, w.model, w.dataset, w.name, w.seed),
    resources:
        gpu=placement.per_job(GRID, placement.eval_gpus),
        mem_mb=RESOURCES.get("evaluate", {}).get("mem_mb") or placement.per_job(GRID, jobs.eval_mem_mb),
        runtime=RESOURCES.get("evaluate", {}).get("runtime", 120),
    conda:
        "../envs/steering.yaml"
    log:
        "results/logs/lm_eval/{model}/{dataset}/{name}/seed{seed}.log",
    benchmark:
        "results/benchmarks/lm_eval/{model}/{dataset}/{name}/seed{seed}.tsv"
    shell:
        "python -m steering.runtime.gpu_lease {resources.gpu} --"
        " python scripts/lm_eval_run.py {params.args} > {log:q} 2>&1"


rule lm_eval_tables:
    input:
        results=[job.path for job in LM_EVAL_JOBS],
    output:
        long=report("results/tables/lm_eval.csv", caption="../report/lm_eval.rst", category="Tables"),
        retention=report(
            multiext("results/tables/lm_eval_retention", ".csv", ".md"),
            caption="../report/lm_eval_retention.rst",
            category="Tables",
        ),
    conda:
        "../envs/steering.yaml"
    log:
        "results/logs/lm_eval_tables.log",
    benchmark:
        "results/benchmarks/lm_eval_tables.tsv"
    shell:
        "python scripts/lm_eval_tables.py --results {input.results:q} --out-dir results/tables"
        " > {log:q} 2>&1"
