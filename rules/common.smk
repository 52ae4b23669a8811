# The run grid from the config, wildcard constraints, and per-job arguments (plain Python from
# steering.pipeline, which imports no torch, so the DAG of the paper grid builds in seconds).
# GRID is the config with every swept variant replaced by its points (silu@lr=0.002, ...):
# from here on a point is an ordinary variant.
from steering import pipeline, placement

GRID = pipeline.grid(config)
RUNS = pipeline.runs(GRID)
TRAINED_VARIANTS = [v for v in GRID["variants"] if pipeline.is_trained(GRID, v)]
RESOURCES = config.get("resources", {})


wildcard_constraints:
    model=pipeline.wildcard_pattern(config["models"]),
    dataset=pipeline.wildcard_pattern(config["datasets"]),
    variant=pipeline.wildcard_pattern(GRID["variants"]),
    seed=r"\d+",
