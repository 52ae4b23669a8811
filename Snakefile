# The reproduction pipeline, as a table of contents.
# config -> schema (defaults filled, bad keys stop the run) -> data, models -> train -> evaluate
# -> aggregate. Every job is a `python scripts/...` command with quoted arguments (GPU jobs
# under steering.gpu_lease, which gives each its own GPUs on a local multi-GPU machine).
import copy

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

from steering import grid_config

min_version("9.0")


# The embedded default, unless --configfile names others (Snakemake would otherwise merge the
# two, e.g. the default's tiny model into the paper grid).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"



# The schema first (it fills in defaults), then what it cannot see: repeated YAML keys, keys
# a variant's method never reads, duplicate entries (steering/grid_config.py).
written = copy.deepcopy(config)
validate(config, "config/schema.yaml")
try:
    grid_config.check(
        config, written, files=workflow.overwrite_configfiles or ["config/config.yaml"]
    )
except grid_config.GridConfigError as e:
    raise WorkflowError(str(e)) from None


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/aggregate.smk"


rule all:
    input:
        rules.aggregate.output,
    default_target: True
