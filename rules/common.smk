# The run grid from the config, wildcard constraints, and per-job arguments (plain Python from
# steering.pipeline, which imports no torch, so the DAG of the paper grid builds in seconds).
from steering import pipeline

RUNS = pipeline.runs(config)
TRAINED_VARIANTS = [v for v in config["variants"] if pipeline.is_trained(config, v)]
RESOURCES = config.get("resources", {})


wildcard_constraints:
    model=pipeline.wildcard_pattern(config["models"]),
    dataset=pipeline.wildcard_pattern(config["datasets"]),
    variant=pipeline.wildcard_pattern(config["variants"]),
    seed=r"\d+",
