# The tiny end-to-end demo: train steering on a tiny model, evaluate, save, reload.


rule demo:
    output:
        summary="results/demo/summary.json",
        checkpoint=directory("results/demo/checkpoint"),
    params:
        steps=config["demo"]["steps"],
        seed=config["demo"]["seed"],
        lr=config["demo"]["lr"],
    resources:
        gpu=0,
    log:
        "results/logs/demo.log",
    benchmark:
        "results/benchmarks/demo.tsv"
    shell:
        "python scripts/demo.py --out-dir results/demo --steps {params.steps:q}"
        " --seed {params.seed:q} --lr {params.lr:q} > {log:q} 2>&1"
