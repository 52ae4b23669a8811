# The reproduction pipeline, as a table of contents.
# config -> schema (defaults filled, bad keys stop the run) -> sweeps expanded into points ->
# data, models -> train -> evaluate -> aggregate (selection on validation, summaries of
# test). Every job is a `python scripts/...` command with quoted arguments (GPU jobs under
# steering.runtime.gpu_lease, which gives each its own GPUs on a local multi-GPU machine).
import copy
import gc

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

from steering.pipeline import grid_config

min_version("9.0")

# Planning the paper grid builds millions of small objects and almost no garbage cycles, yet
# Python's cyclic collector would rescan them over and over: a fifth to a quarter of a dry
# run (benchmarks/README.md). Off while the DAG is built, on again before the first job runs
# (onstart: not in dry runs, which end after planning).
gc.disable()


onstart:
    gc.enable()



# The embedded default, unless --configfile names others (Snakemake would otherwise merge the
# two, e.g. the default's tiny model into the paper grid).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"



# The schema first (config/schema.yaml plus every method's settings from steering/methods/;
# all violations listed, then defaults filled in), then what it cannot see: repeated YAML
# keys, keys a variant's method never reads, sweeps that cannot mean what they say, duplicate
# entries (steering/pipeline/grid_config.py).
written = copy.deepcopy(config)
try:
    grid_config.check(
        config,
        written,
        files=workflow.overwrite_configfiles or ["config/config.yaml"],
        schema=f"{workflow.basedir}/config/schema.yaml",
    )
except grid_config.GridConfigError as e:
    raise WorkflowError(str(e)) from None


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/aggregate.smk"
include: "rules/lm_eval.smk"
include: "rules/analysis.smk"


# The report opens with what ran (report/workflow.rst renders the config, and this: the
# config files it came from). Set after the grid is built, so no job's arguments see it.
report: "report/workflow.rst"


config["_configfiles"] = jobs.config_names(workflow.overwrite_configfiles)
# ... and the run's headline (its test summary with intervals and the comparisons), which the
# aggregation wrote: present when `--report` runs after the jobs.
config["_headline"] = jobs.headline("results/tables/headline.rst")


rule all:
    input:
        rules.aggregate.output,
        LM_EVAL_TABLES,
        ANALYSIS_OUTPUTS,
    default_target: True
