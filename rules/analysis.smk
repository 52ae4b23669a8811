# The paper's oracle-shift analysis, only when the config has an `analysis` block
# (steering/pipeline/analysis_jobs.py): per model and listed dataset, after the full run and the
# steering / LoRA runs of the first seed (and their validation metrics), the per-layer table,
# the approximations' KL table and three plots. Without the block no job of this file runs.
from steering.pipeline import analysis_jobs

ANALYSIS_OUTPUTS = analysis_jobs.outputs(GRID)


rule analysis:
    input:
        lambda w: analysis_jobs.inputs(GRID, w.model, w.dataset),
    output:
        layers=report(
            "results/analysis/{model}/{dataset}/layers.csv",
            caption="../report/analysis_layers.rst",
            category="Analysis",
        ),
        approximations=report(
            "results/analysis/{model}/{dataset}/approximations.csv",
            caption="../report/analysis_approximations.rst",
            category="Analysis",
        ),
        summary="results/analysis/{model}/{dataset}/summary.json",
        rank=report(
            "results/analysis/{model}/{dataset}/effective_rank.png",
            caption="../report/analysis_rank.rst",
            category="Analysis",
        ),
        mlp=report(
            "results/analysis/{model}/{dataset}/mlp_share.png",
            caption="../report/analysis_mlp_share.rst",
            category="Analysis",
        ),
        kl=report(
            "results/analysis/{model}/{dataset}/kl.png",
            caption="../report/analysis_kl.rst",
            category="Analysis",
        ),
    params:
        args=lambda w: analysis_jobs.args(GRID, w.model, w.dataset),
    resources:
        gpu=placement.per_job(GRID, placement.eval_gpus),
        mem_mb=RESOURCES.get("evaluate", {}).get("mem_mb") or placement.per_job(GRID, jobs.eval_mem_mb),
        runtime=RESOURCES.get("evaluate", {}).get("runtime", 120),
    conda:
        "../envs/steering.yaml"
    log:
        "results/logs/analysis/{model}/{dataset}.log",
    benchmark:
        "results/benchmarks/analysis/{model}/{dataset}.tsv"
    shell:
        "python -m steering.runtime.gpu_lease {resources.gpu} --"
        " python scripts/analyze.py {params.args} > {log:q} 2>&1"
