# Task data: the hub, local files or the generator -> carved Parquet splits + manifest; and the
# tiny models the default config builds itself. CPU jobs.


rule prepare_data:
    output:
        manifest="results/data/{dataset}/manifest.json",
        splits=multiext("results/data/{dataset}/", "train.parquet", "validation.parquet", "test.parquet"),
    params:
        args=lambda w: pipeline.data_args(GRID, w.dataset),
    conda:
        "../envs/steering.yaml"
    log:
        "results/logs/prepare_data/{dataset}.log",
    benchmark:
        "results/benchmarks/prepare_data/{dataset}.tsv"
    shell:
        "python scripts/prepare_data.py {params.args} > {log:q} 2>&1"


rule make_tiny_model:
    output:
        "results/models/{model}/config.json",
    params:
        args=lambda w: pipeline.tiny_model_args(GRID, w.model),
    conda:
        "../envs/steering.yaml"
    log:
        "results/logs/make_tiny_model/{model}.log",
    benchmark:
        "results/benchmarks/make_tiny_model/{model}.tsv"
    shell:
        "python scripts/make_tiny_model.py {params.args} > {log:q} 2>&1"
