"""One lm-eval evaluation as the pipeline runs it (``scripts/lm_eval_run.py``): the tasks
checked against lm-eval's list before any model loads, the sweep point chosen on validation
when asked, lm-eval's results with our provenance, one JSON file written whole.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from steering.runtime.io import write_text


def chosen_checkpoint(metrics_files: list[str], seed: int) -> tuple[str, str]:
    """(checkpoint directory, point) of the point the selection chooses on validation among
    the runs of ``metrics_files`` (``<run>/validation.metrics.json`` of every point and seed
    of one variant), for ``seed``."""
    from steering.pipeline import results, selection, sweep

    table = results.long_table(metrics_files)
    chosen = selection.select(table)
    if len(chosen.table) != 1:
        problems = "; ".join(chosen.warnings()) or "the files are not of one variant"
        raise ValueError(f"no sweep point to evaluate with lm-eval: {problems}")
    row = chosen.table.iloc[0]
    for path in metrics_files:
        key = results.parse_metrics_path(path)
        if key["point"] == row["point"] and key["seed"] == seed:
            run = sweep.join_run_name(row["variant"], row["point"])
            return str(Path(path).parent / "checkpoint"), run
    raise ValueError(f"point {row['point']} has no run of seed {seed} among {metrics_files[:3]}")


def task_manager(tasks: list[str], include_path: str | None = None):
    """lm-eval's task index for ``tasks``: those of ``include_path`` (task YAMLs over local
    files) alone when they are all there (indexing lm-eval's thousands of task files takes
    seconds to a minute), else lm-eval's with them; an unknown task is a ValueError naming
    it and where to find the list."""
    from lm_eval.tasks import TaskManager

    if include_path is not None:
        if not Path(include_path).is_dir():
            raise FileNotFoundError(f"--include-path {include_path} is not a directory")
        local = TaskManager(include_path=include_path, include_defaults=False)
        if all(local.match_tasks([t]) for t in tasks):
            return local
    manager = TaskManager(include_path=include_path)
    unknown = [t for t in tasks if not manager.match_tasks([t])]
    if unknown:
        raise ValueError(
            f"unknown lm-eval task(s) {unknown}; lm-eval's list: python -m steering.lm_eval ls "
            "tasks (tasks over local files: --include-path DIR)"
        )
    return manager


def evaluate(
    model_name: str,
    tasks: list[str],
    checkpoint: str | None = None,
    include_path: str | None = None,
    limit: int | None = None,
    num_fewshot: int | None = None,
    batch_size: int = 16,
    **model_args: Any,
) -> dict[str, Any]:
    """lm-eval's results (without per-sample logs) for ``checkpoint`` on ``model_name`` (or
    the base model alone); ``model_args``: ``SteeringLM``'s (precision, device, ...)."""
    from steering.lm_eval import require

    require()
    import lm_eval

    from steering.lm_eval.bridge import SteeringLM

    manager = task_manager(tasks, include_path)
    lm = SteeringLM(
        checkpoint=checkpoint, pretrained=model_name, batch_size=batch_size, **model_args
    )
    out = lm_eval.simple_evaluate(
        model=lm, tasks=list(tasks), num_fewshot=num_fewshot, limit=limit, task_manager=manager
    )
    out.pop("samples", None)
    return out


def write(results: dict[str, Any], path: str | Path) -> Path:
    """The results as JSON (lm-eval's own serialisation of what JSON cannot hold)."""
    from lm_eval.utils import handle_non_serializable

    text = json.dumps(results, indent=2, default=handle_non_serializable, ensure_ascii=False)
    return write_text(path, text + "\n")
