# Training: one (model, dataset, variant, seed) -> its checkpoint directory (steering adapter,
# or a LoRA / full fine-tuning baseline) and training log.


rule train:
    input:
        data="results/data/{dataset}/manifest.json",
        model=lambda w: pipeline.model_inputs(config, w.model),
    output:
        checkpoint=directory("results/runs/{model}/{dataset}/{variant}/seed{seed}/checkpoint"),
        train_log="results/runs/{model}/{dataset}/{variant}/seed{seed}/train_log.jsonl",
    wildcard_constraints:
        variant=pipeline.wildcard_pattern(TRAINED_VARIANTS),
    params:
        script=lambda w: pipeline.train_script(config, w.variant),
        args=lambda w: pipeline.train_args(config, w.model, w.dataset, w.variant, w.seed),
    resources:
        gpu=1,
        mem_mb=RESOURCES.get("train", {}).get("mem_mb", 16000),
        runtime=RESOURCES.get("train", {}).get("runtime", 240),
    conda:
        "../envs/steering.yaml"
    log:
        "results/logs/train/{model}/{dataset}/{variant}/seed{seed}.log",
    benchmark:
        "results/benchmarks/train/{model}/{dataset}/{variant}/seed{seed}.tsv"
    shell:
        "python {params.script} {params.args} > {log:q} 2>&1"
