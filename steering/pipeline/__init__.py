"""The grid and its tables, torch-free: a config checked and expanded into jobs (train,
evaluate, analysis, lm-eval) with their arguments, resources and placement, then the
aggregation of their records into the results tables, selection on validation, plots and the
GPU-hour budget. The Snakefile and ``rules/`` call it; it never imports snakemake.

- ``grid_config``: a config read and checked across values and files (``GridConfigError``)
- ``config_schema``: ``config/schema.yaml`` completed with every method's settings
- ``sweep``: swept variants -> points (``silu@lr=0.002``), run names
- ``jobs``: the grid, run directories and every job's command-line arguments
- ``placement``: per-model, per-variant GPUs, sharding and batch split
- ``analysis_jobs``, ``lm_eval_jobs``: the grid's analysis and lm-eval jobs
- ``results``: the long table of every run's metrics, summaries, the paper's numbers beside
- ``reference``: the paper's reference accuracies
- ``selection``: the point of each sweep chosen on validation
- ``items``, ``intervals``, ``comparisons``: every run's per-item verdicts, the bootstrap and
  permutation statistics over them, and the paired comparisons and intervals of the tables
- ``headline``: the report's first page
- ``plots``, ``forest``: the report's figures
- ``budget``: GPU-hours and memory per job for a config and GPU kind (``scripts/plan.py``)

May import: ``training`` (its torch-free ``memory``), ``methods``, ``loading``, ``tasks``,
the top-level modules and ``runtime``; only torch-free modules at import time.
"""
