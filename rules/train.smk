# Training: one (model, dataset, variant or sweep point, seed) -> its checkpoint directory
# (steering adapter, or a LoRA / full fine-tuning / ReFT / joint checkpoint) and training log.
# `gpus_per_train` > 1 launches one DDP process per GPU (torchrun) and asks the scheduler for
# that many GPUs. Checkpoints every `save_steps` go to the run's resume/ directory (not an
# output, so it survives a failed attempt); a rerun or retry resumes from the last one.
# gpu_lease gives the job GPUs of its own (CUDA_VISIBLE_DEVICES) on a local multi-GPU machine;
# under Slurm, Slurm has chosen them. Inputs and resources are constants where the config
# allows (jobs.model_input, placement.per_train_job): one function less per job is seconds less
# over the paper grid. The shell command and params stay as they were: Snakemake reruns every
# job of a rule whose command text or params change.


rule train:
    input:
        data="results/data/{dataset}/manifest.json",
        model=jobs.model_input(GRID),
    output:
        checkpoint=directory("results/runs/{model}/{dataset}/{variant}/seed{seed}/checkpoint"),
        train_log="results/runs/{model}/{dataset}/{variant}/seed{seed}/train_log.jsonl",
    wildcard_constraints:
        variant=jobs.wildcard_pattern(TRAINED_VARIANTS),
    params:
        launch=lambda w: placement.train_launcher(GRID, w.model, w.variant),
        script=lambda w: jobs.train_script(GRID, w.variant),
        args=lambda w: jobs.train_args(GRID, w.model, w.dataset, w.variant, w.seed),
    resources:
        gpu=placement.per_train_job(GRID, placement.train_gpus),
        mem_mb=RESOURCES.get("train", {}).get("mem_mb") or placement.per_train_job(GRID, jobs.train_mem_mb),
        runtime=RESOURCES.get("train", {}).get("runtime", 240),
    conda:
        "../envs/steering.yaml"
    log:
        "results/logs/train/{model}/{dataset}/{variant}/seed{seed}.log",
    benchmark:
        "results/benchmarks/train/{model}/{dataset}/{variant}/seed{seed}.tsv"
    shell:
        "python -m steering.runtime.gpu_lease {resources.gpu} --"
        " {params.launch} {params.script} {params.args} > {log:q} 2>&1"
