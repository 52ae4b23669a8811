"""The pipeline's lm-eval jobs, from a config's optional ``lm_eval`` block (no torch, no
lm-eval: the DAG is planned without either).

    lm_eval: {tasks: [arc_easy, hellaswag], limit: 200}

adds, per model, one job on the untrained base model (the retention tables' reference,
``results/lm_eval/{model}/base.json``) and, per model, dataset, chosen variant and seed, one
job on a trained checkpoint (``results/lm_eval/{model}/{dataset}/{name}/seed{seed}.json``).
``variants`` chooses the variants (default: every trained one; a point's name, e.g.
``silu@lr=0.005``, chooses that point alone). A swept variant costs one job per seed, not
one per point: with ``points: selected`` (the default) its job waits for every point's
validation metrics and evaluates the point the selection chooses
(``steering/pipeline/selection.py``, the rule of the summary tables); ``points: all``
evaluates every point. Each job runs ``scripts/lm_eval_run.py``;
``scripts/lm_eval_tables.py`` gathers them into ``results/tables/lm_eval.csv`` and the
retention table.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

from steering.pipeline import jobs as grid_jobs
from steering.pipeline import placement, sweep

RESULTS = f"{grid_jobs.RESULTS}/lm_eval"
DEFAULTS = {"limit": None, "num_fewshot": None, "batch_size": 16, "points": "selected"}


@dataclass(frozen=True)
class Job:
    """One lm-eval job: the base model of ``model`` (no dataset), or the run ``name`` (a
    variant, or one of its points) of ``model`` x ``dataset`` x ``seed``."""

    model: str
    dataset: str | None = None
    name: str | None = None
    seed: int | None = None

    @property
    def path(self) -> str:
        if self.dataset is None:
            return base_output(self.model)
        return run_output(self.model, self.dataset, self.name, self.seed)


def base_output(model: str) -> str:
    return f"{RESULTS}/{model}/base.json"


def run_output(model: str, dataset: str, name: str, seed: int | str) -> str:
    return f"{RESULTS}/{model}/{dataset}/{name}/seed{seed}.json"


def settings(config: dict) -> dict[str, Any] | None:
    """The ``lm_eval`` block with its defaults, or None when the config has none."""
    block = config.get("lm_eval")
    return None if block is None else {**DEFAULTS, **block}


def points_of(grid: dict, variant: str) -> list[str]:
    """The runs of a config variant in the expanded grid: its points, or itself."""
    return [v for v in grid["variants"] if sweep.split_run_name(v)[0] == variant]


def names(grid: dict) -> list[str]:
    """The runs (or swept variants, under ``points: selected``) that get a job per seed."""
    s = settings(grid)
    if s is None:
        return []
    config_variants = list(dict.fromkeys(sweep.split_run_name(v)[0] for v in grid["variants"]))
    out = []
    for chosen in s.get("variants") or config_variants:
        runs = [chosen] if chosen in grid["variants"] else points_of(grid, chosen)
        if not runs or not grid_jobs.is_trained(grid, runs[0]):
            continue  # the base model has its own job per model
        swept = len(runs) > 1 or runs[0] != chosen
        out += [chosen] if swept and s["points"] == "selected" else runs
    return list(dict.fromkeys(out))


def jobs(grid: dict) -> list[Job]:
    """Every lm-eval job of the (expanded) grid, in a stable order."""
    if settings(grid) is None:
        return []
    out = [Job(model) for model in grid["models"]]
    for model in grid["models"]:
        for dataset in grid["datasets"]:
            for name in names(grid):
                out += [Job(model, dataset, name, int(seed)) for seed in grid["seeds"]]
    return out


def outputs(grid: dict) -> list[str]:
    return [job.path for job in jobs(grid)]


def selected(grid: dict, name: str) -> bool:
    """Whether ``name`` is a swept variant whose job chooses its point."""
    return name not in grid["variants"]


def inputs(grid: dict, model: str, dataset: str, name: str, seed: int | str) -> list[str]:
    """What a checkpoint's job waits for: the built model, the checkpoint, and under
    ``points: selected`` every point's checkpoint and validation metrics."""
    found = grid_jobs.model_inputs(grid, model)
    if not selected(grid, name):
        return found + grid_jobs.checkpoint_files(grid_jobs.run_dir(model, dataset, name, seed))
    for point in points_of(grid, name):
        found += grid_jobs.checkpoint_files(grid_jobs.run_dir(model, dataset, point, seed))
    return found + validation_metrics(grid, model, dataset, name)


def validation_metrics(grid: dict, model: str, dataset: str, variant: str) -> list[str]:
    return [
        f"{grid_jobs.run_dir(model, dataset, point, s)}/validation.metrics.json"
        for point in points_of(grid, variant)
        for s in grid["seeds"]
    ]


def _common(grid: dict, model: str, output: str) -> list[str]:
    s = settings(grid)
    args = ["--model-name", grid_jobs.model_name(grid, model), "--tasks", *s["tasks"]]
    if s.get("include_path"):
        args += ["--include-path", s["include_path"]]
    for key in ("limit", "num_fewshot", "batch_size"):
        if s.get(key) is not None:
            args += [f"--{key.replace('_', '-')}", str(s[key])]
    precision = placement.model_setting(grid, model, "precision", None)
    dtype = grid["models"][model].get("dtype") or grid.get("training", {}).get("dtype")
    if precision:
        args += ["--precision", precision]
    elif dtype:
        args += ["--dtype", dtype]
    spread = placement.eval_gpus(grid, model) > 1 or grid["models"][model].get("device_map")
    device = grid.get("training", {}).get("device")
    if spread:
        args += ["--device-map", grid["models"][model].get("device_map") or "auto"]
    elif device:
        args += ["--device", device]
    return args + ["--output", output]


def base_args(grid: dict, model: str) -> str:
    """The quoted arguments of ``scripts/lm_eval_run.py`` on the base model of ``model``."""
    return shlex.join(_common(grid, model, base_output(model)))


def run_args(grid: dict, model: str, dataset: str, name: str, seed: int | str) -> str:
    """The quoted arguments of ``scripts/lm_eval_run.py`` for one checkpoint job."""
    args = _common(grid, model, run_output(model, dataset, name, seed))
    if selected(grid, name):
        args += ["--seed", str(seed), "--select", *validation_metrics(grid, model, dataset, name)]
    else:
        args += ["--checkpoint", f"{grid_jobs.run_dir(model, dataset, name, seed)}/checkpoint"]
    return shlex.join(args)


def problems(config: dict, workdir: str = ".") -> list[str]:
    """What the ``lm_eval`` block of a schema-valid config cannot mean (for
    ``steering.pipeline.grid_config``): unknown or untrained variants, a missing ``include_path``,
    lm-eval not installed."""
    import importlib.util
    from pathlib import Path

    from steering.runtime.errors import LM_EVAL_INSTALL as INSTALL

    s = config.get("lm_eval")
    if s is None:
        return []
    out = []
    if importlib.util.find_spec("lm_eval") is None:
        out.append(f"lm_eval: {INSTALL}")
    grid = {"variants": sweep.expand(config["variants"])}
    for name in s.get("variants") or []:
        found = [name] if name in grid["variants"] else points_of(grid, name)
        if not found:
            out.append(
                f"lm_eval.variants: {name!r} is neither a variant nor a sweep point of one; "
                f"the variants: {list(config['variants'])}"
            )
        elif not grid_jobs.is_trained(grid, found[0]):
            out.append(
                f"lm_eval.variants: {name!r} is the untrained base model, which every model's "
                "lm-eval base job evaluates already; remove it"
            )
    where = s.get("include_path")
    if where and not (Path(workdir) / where).is_dir():
        out.append(
            f"lm_eval.include_path '{where}' is not a directory (relative paths are from "
            f"{workdir}); it should hold lm-eval task YAMLs"
        )
    return out
