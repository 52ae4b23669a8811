# Evaluation: a checkpoint (or the untrained base model for `method: base` variants) x the
# configured splits -> {split}.json records and {split}.metrics.json. `gpus_per_eval` > 1
# spreads the model over that many GPUs (device_map="auto").


rule evaluate:
    input:
        data="results/data/{dataset}/manifest.json",
        model=jobs.model_input(GRID),
        checkpoint=jobs.evaluate_checkpoint(GRID),
    output:
        records=expand(
            "results/runs/{{model}}/{{dataset}}/{{variant}}/seed{{seed}}/{split}.json",
            split=config["splits"],
        ),
        metrics=expand(
            "results/runs/{{model}}/{{dataset}}/{{variant}}/seed{{seed}}/{split}.metrics.json",
            split=config["splits"],
        ),
    params:
        args=lambda w: jobs.eval_args(GRID, w.model, w.dataset, w.variant, w.seed),
    resources:
        gpu=placement.per_job(GRID, placement.eval_gpus),
        mem_mb=RESOURCES.get("evaluate", {}).get("mem_mb") or placement.per_job(GRID, jobs.eval_mem_mb),
        runtime=RESOURCES.get("evaluate", {}).get("runtime", 120),
    conda:
        "../envs/steering.yaml"
    log:
        "results/logs/evaluate/{model}/{dataset}/{variant}/seed{seed}.log",
    benchmark:
        "results/benchmarks/evaluate/{model}/{dataset}/{variant}/seed{seed}.tsv"
    shell:
        "python -m steering.runtime.gpu_lease {resources.gpu} --"
        " python scripts/inference.py {params.args} > {log:q} 2>&1"
