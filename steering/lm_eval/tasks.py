"""lm-eval tasks over local files, for evaluating offline: a task config (YAML) that reads
its rows with ``dataset_path: json`` from absolute ``data_files`` paths (no hub, with
``HF_DATASETS_OFFLINE=1``), in a directory lm-eval takes as ``--include_path``.

``arc_challenge`` writes lm-eval's own ``arc_challenge`` task over local ARC rows in the hub
schema (``{"id", "question", "choices": {"text", "label"}, "answerKey"}``): it includes the
installed lm-eval's ``arc_challenge.yaml`` (prompt "Question: ...\\nAnswer:", the choices'
texts as continuations, acc and acc_norm) and replaces only where the rows come from.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import yaml

from steering.runtime.io import write_text


def lm_eval_task_file(*parts: str) -> Path:
    """A file of the installed lm-eval's task library (``arc``, ``arc_challenge.yaml``)."""
    from steering.lm_eval import require

    require()
    spec = importlib.util.find_spec("lm_eval")
    path = Path(next(iter(spec.submodule_search_locations))) / "tasks" / Path(*parts)
    if not path.is_file():
        raise ValueError(f"the installed lm-eval has no task file {path}")
    return path


def local_task(
    out_dir: str | Path,
    name: str,
    data_file: str | Path | None = None,
    rows: list[dict] | None = None,
    **config: Any,
) -> Path:
    """``<out_dir>/<name>.yaml``: task ``name`` over ``data_file`` (JSON Lines; or ``rows``,
    written to ``<out_dir>/<name>.jsonl``) as its test split, plus ``config``'s keys (lm-eval
    task fields: ``output_type``, ``doc_to_text``, ...)."""
    out = Path(out_dir)
    if rows is not None:
        data_file = out / f"{name}.jsonl"
        write_text(data_file, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    if data_file is None:
        raise ValueError(f"task {name}: give data_file or rows")
    data = Path(data_file).resolve()
    if not data.is_file():
        raise FileNotFoundError(f"task {name}: no rows file {data}")
    body = {
        "task": name,
        "dataset_path": "json",
        "dataset_name": None,
        "dataset_kwargs": {"data_files": {"test": str(data)}},
        "training_split": None,
        "validation_split": None,
        "test_split": "test",
        **config,
    }
    path = out / f"{name}.yaml"
    write_text(path, yaml.safe_dump(body, sort_keys=False, allow_unicode=True))
    return path


def arc_challenge(out_dir: str | Path, data_file: str | Path, name: str = "arc_challenge_local"):
    """lm-eval's ``arc_challenge`` task over local ARC rows (hub schema, JSON Lines)."""
    own = lm_eval_task_file("arc", "arc_challenge.yaml")
    # tag: none, so the local task does not join lm-eval's ai2_arc group
    return local_task(out_dir, name, data_file, include=str(own), tag=[])
