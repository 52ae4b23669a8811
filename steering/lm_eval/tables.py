"""The pipeline's lm-eval tables (no torch, no lm-eval): every job's results as one long
table, and the retention table, each method minus the base model per lm-eval task.

Long table (``lm_eval.csv``): one row per job x task x metric (lm-eval's ``acc,none`` is
metric ``acc``, filter ``none``), with the metric's standard error where lm-eval gives one.
A base-model job (``results/lm_eval/{model}/base.json``) has no dataset, variant ``base``;
a checkpoint job (``results/lm_eval/{model}/{dataset}/{name}/seed{seed}.json``) the variant
and point of its run (for a job that chose its point on validation, the one it chose).

Retention (``lm_eval_retention.csv`` / ``.md``): per model, dataset, variant, task and
metric, the mean and sample standard deviation over seeds, the base model's value, and
``retention`` = mean - base (negative: the method lost that much of the capability).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pandas as pd

from steering.pipeline import sweep

PATH = re.compile(
    r"(?:^|/)lm_eval/(?P<model>[^/]+)/(?:base\.json|(?P<dataset>[^/]+)/(?P<name>[^/]+)/"
    r"seed(?P<seed>\d+)\.json)$"
)
LONG_COLUMNS = [
    "model",
    "dataset",
    "variant",
    "point",
    "seed",
    "method",
    "task",
    "metric",
    "filter",
    "value",
    "stderr",
    "limit",
    "git_commit",
]
KEY = ["model", "dataset", "variant", "task", "metric", "filter"]


def parse_path(path: str | Path) -> dict:
    m = PATH.search(Path(path).as_posix())
    if m is None:
        raise ValueError(
            f"{path} is not an lm-eval result of the pipeline (expected .../lm_eval/<model>/"
            "base.json or .../lm_eval/<model>/<dataset>/<run>/seed<N>.json)"
        )
    if m["dataset"] is None:
        return {"model": m["model"], "dataset": "", "name": "base", "seed": None}
    return {"model": m["model"], "dataset": m["dataset"], "name": m["name"], "seed": int(m["seed"])}


def rows_of(path: str | Path) -> list[dict]:
    key = parse_path(path)
    try:
        found = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot read lm-eval results {path}: {e}") from e
    variant, point = sweep.split_run_name(found.get("selected") or key["name"])
    ours = found.get("config", {}).get("steering", {})
    rows = []
    for task, metrics in sorted(found.get("results", {}).items()):
        for name, value in metrics.items():
            metric, comma, filter_ = name.partition(",")
            if not comma or metric.endswith("_stderr") or not _number(value):
                continue
            stderr = metrics.get(f"{metric}_stderr,{filter_}")
            rows.append(
                {
                    "model": key["model"],
                    "dataset": key["dataset"],
                    "variant": variant,
                    "point": point,
                    "seed": key["seed"],
                    "method": ours.get("method", ""),
                    "task": task,
                    "metric": metric,
                    "filter": filter_,
                    "value": float(value),
                    "stderr": float(stderr) if _number(stderr) else math.nan,
                    "limit": found.get("config", {}).get("limit"),
                    "git_commit": ours.get("git_commit"),
                }
            )
    return rows


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def long_table(paths) -> pd.DataFrame:
    rows = [row for path in paths for row in rows_of(path)]
    df = pd.DataFrame(rows, columns=LONG_COLUMNS)
    df["seed"] = df["seed"].astype("Int64")
    return df.sort_values(
        ["model", "dataset", "variant", "point", "seed", "task", "metric"], ignore_index=True
    )


def retention(df: pd.DataFrame) -> pd.DataFrame:
    """Each (model, dataset, variant)'s mean over seeds per task and metric, beside the base
    model's value on the same model, task and metric, and their difference."""
    base = df[df["dataset"] == ""].set_index(["model", "task", "metric", "filter"])["value"]
    runs = df[df["dataset"] != ""]
    rows = []
    for (model, dataset, variant, task, metric, filter_), g in runs.groupby(KEY, sort=True):
        values = g.sort_values("seed")["value"]
        mean = float(values.mean())
        std = float(values.std(ddof=1)) if len(values) > 1 else math.nan
        reference = base.get((model, task, metric, filter_), math.nan)
        rows.append(
            {
                "model": model,
                "dataset": dataset,
                "variant": variant,
                "point": ",".join(sorted(set(g["point"]) - {""})),
                "task": task,
                "metric": metric,
                "filter": filter_,
                "mean": mean,
                "std": std,
                "seeds": int(g["seed"].nunique()),
                "base": float(reference),
                "retention": mean - float(reference),
            }
        )
    columns = [*KEY[:3], "point", *KEY[3:], "mean", "std", "seeds", "base", "retention"]
    return pd.DataFrame(rows, columns=columns)


def to_markdown(table: pd.DataFrame) -> str:
    """The retention table for reading: one line per row, values to 4 decimals."""
    header = ["model", "dataset", "variant", "task", "metric", "mean ± std", "base", "retention"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in table.itertuples():
        spread = "" if math.isnan(r.std) else f" ± {r.std:.4f}"
        name = sweep.join_run_name(r.variant, r.point) if "," not in r.point else r.variant
        cells = [
            r.model,
            r.dataset,
            name,
            r.task,
            r.metric if r.filter == "none" else f"{r.metric} ({r.filter})",
            f"{r.mean:.4f}{spread}",
            f"{r.base:.4f}",
            f"{r.retention:+.4f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
