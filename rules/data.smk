# Task data: the hub, local files or the generator -> carved Parquet splits + manifest; and the
# models the pipeline makes itself: tiny random ones, and GGUF files converted to model
# directories (docs/models.md). CPU jobs.


rule prepare_data:
    output:
        manifest="results/data/{dataset}/manifest.json",
        splits=multiext("results/data/{dataset}/", "train.parquet", "validation.parquet", "test.parquet"),
    params:
        args=lambda w: jobs.data_args(GRID, w.dataset),
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
    wildcard_constraints:
        model=jobs.built_pattern(config, "tiny"),
    params:
        args=lambda w: jobs.tiny_model_args(GRID, w.model),
    conda:
        "../envs/steering.yaml"
    log:
        "results/logs/make_tiny_model/{model}.log",
    benchmark:
        "results/benchmarks/make_tiny_model/{model}.tsv"
    shell:
        "python scripts/make_tiny_model.py {params.args} > {log:q} 2>&1"


rule convert_gguf_model:
    input:
        lambda w: jobs.gguf_model_input(GRID, w.model),
    output:
        "results/models/{model}/config.json",  # written last: a rerun replaces a partial one
    wildcard_constraints:
        model=jobs.built_pattern(config, "gguf"),
    params:
        args=lambda w: jobs.gguf_model_args(GRID, w.model),
    conda:
        "../envs/steering.yaml"
    log:
        "results/logs/convert_gguf_model/{model}.log",
    benchmark:
        "results/benchmarks/convert_gguf_model/{model}.tsv"
    shell:
        "python scripts/convert_gguf.py {params.args} > {log:q} 2>&1"
