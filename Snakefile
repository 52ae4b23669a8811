# The reproduction pipeline, as a table of contents.
# config -> schema (defaults filled, bad keys stop the run) -> data, models -> train -> evaluate
# -> aggregate. Every job is a `python scripts/...` command with quoted arguments (GPU jobs
# under steering.gpu_lease, which gives each its own GPUs on a local multi-GPU machine).
from snakemake.utils import min_version, validate

min_version("9.0")


# The embedded default, unless --configfile names others (Snakemake would otherwise merge the
# two, e.g. the default's tiny model into the paper grid).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"



validate(config, "config/schema.yaml")


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/aggregate.smk"


rule all:
    input:
        rules.aggregate.output,
    default_target: True
