# The run grid from the config, wildcard constraints, and per-job arguments (plain Python from
# steering.pipeline.jobs, which imports no torch, so the DAG of the paper grid builds in seconds).
# GRID is the config with every swept variant replaced by its points (silu@lr=0.002, ...):
# from here on a point is an ordinary variant.
from steering.pipeline import jobs, placement

GRID = jobs.grid(config)
RUNS = jobs.runs(GRID)
TRAINED_VARIANTS = [v for v in GRID["variants"] if jobs.is_trained(GRID, v)]
RESOURCES = config.get("resources", {})


wildcard_constraints:
    model=jobs.wildcard_pattern(config["models"]),
    dataset=jobs.wildcard_pattern(config["datasets"]),
    variant=jobs.wildcard_pattern(GRID["variants"]),
    seed=r"\d+",
