# The reproduction pipeline, as a table of contents. Config -> schema-validated -> rules.
# Until the pipeline over the paper's tasks lands, the one job is the tiny end-to-end demo.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "config/schema.yaml")


include: "rules/demo.smk"


rule all:
    input:
        "results/demo/summary.json",
    default_target: True
