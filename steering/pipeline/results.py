"""Aggregating run results into tables (no torch import; plots are ``steering/pipeline/plots.py``).

Long table: one row per run x split, read from ``results/runs/{model}/{dataset}/{run}/
seed{seed}/{split}.metrics.json`` and the run's ``checkpoint/training.json``, where ``{run}``
is a variant's name or one of its sweep points (``silu@lr=0.002``: columns ``variant`` silu,
``point`` lr=0.002; ``steering/pipeline/sweep.py``). Summary: for one split and one point per
(model, dataset, variant), the selected one (``steering/pipeline/selection.py``), mean and sample
standard deviation over seeds of the accuracy (%), one row per (model, variant), one column
per dataset, an ``Average`` column (the per-seed mean over datasets, then mean and std over
seeds), and the paper's number beside each cell whose row maps to a reference
(``steering/pipeline/reference.py``). Runs of one dataset under different task protocol versions are
never mixed.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pandas as pd

from steering.pipeline import sweep
from steering.pipeline.reference import reference

METRICS_PATH = re.compile(
    r"(?:^|/)runs/(?P<model>[^/]+)/(?P<dataset>[^/]+)/(?P<run>[^/]+)/seed(?P<seed>\d+)/"
    r"(?P<split>[^/]+)\.metrics\.json$"
)
LONG_COLUMNS = [
    "model",
    "dataset",
    "variant",
    "point",
    "seed",
    "split",
    "accuracy",
    "accuracy_strict",
    "chance",
    "n",
    "trainable_parameters",
    "trainable_share",
    "train_time_s",
    "eval_tokens_per_s",
    "batch_order",
    "batch_layout",
    "objective",
    "protocol_version",
    "git_commit",
]


def parse_metrics_path(path: str | Path) -> dict:
    m = METRICS_PATH.search(Path(path).as_posix())
    if m is None:
        raise ValueError(
            f"{path} is not a run metrics file "
            "(expected .../runs/<model>/<dataset>/<variant>[@<point>]/seed<N>/<split>.metrics.json)"
        )
    variant, point = sweep.split_run_name(m["run"])
    try:
        point = sweep.point_label(sweep.parse_label(point))  # canonical: keys in order
    except ValueError as e:
        raise ValueError(f"{path}: run name {m['run']!r}: {e}") from None
    return {
        "model": m["model"],
        "dataset": m["dataset"],
        "variant": variant,
        "point": point,
        "seed": int(m["seed"]),
        "split": m["split"],
    }


def long_table(metrics_paths) -> pd.DataFrame:
    """One row per run x split with accuracy, sizes, costs and provenance."""
    rows = []
    for path in map(Path, metrics_paths):
        key = parse_metrics_path(path)
        try:
            metrics = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"cannot read metrics file {path}: {e}") from e
        training_file = path.parent / "checkpoint" / "training.json"
        training = json.loads(training_file.read_text()) if training_file.is_file() else {}
        prov = metrics.get("provenance", {})
        rows.append(
            {
                **key,
                "accuracy": metrics["accuracy"],
                "accuracy_strict": metrics.get("accuracy_strict", math.nan),  # older runs: none
                "chance": metrics.get("chance", math.nan),
                "n": metrics["n"],
                "trainable_parameters": training.get("trainable_parameters", 0),
                "trainable_share": training.get("trainable_share", 0.0),
                "train_time_s": training.get("train_runtime_s"),
                "eval_tokens_per_s": metrics.get("tokens_per_s"),
                "batch_order": batch_order(training),
                "batch_layout": (training.get("batch_layout", "padded") if training else None),
                "objective": objective(training),
                "protocol_version": prov.get("protocol_version"),
                "git_commit": prov.get("git_commit"),
            }
        )
    df = pd.DataFrame(rows, columns=LONG_COLUMNS)
    check_protocols(df)
    return df.sort_values(RUN_KEY, ignore_index=True)


RUN_KEY = ["model", "dataset", "variant", "point", "seed", "split"]
GROUPED = "length-grouped"


def batch_order(training: dict) -> str | None:
    """How a run's batches were drawn: ``official`` or ``length-grouped`` (runs from before
    the setting existed were length-grouped); None for an untrained model."""
    if not training:
        return None
    return training.get("batch_order", GROUPED)


def objective(training: dict) -> str | None:
    """How a run trained: ``sft`` (supervised, the paper's) or ``grpo`` (reinforcement
    learning on the task's rewards); None for an untrained model."""
    if not training:
        return None
    return training.get("objective", "sft")


def reward_curves(metrics_paths) -> pd.DataFrame:
    """One row per (GRPO run, logged step): the mean weighted reward and each reward
    function's mean, read from the ``training.json`` beside each run's metrics (each run
    once, whatever its splits); empty with the key columns when no run trained with GRPO."""
    rows, seen = [], set()
    for path in map(Path, metrics_paths):
        key = {k: v for k, v in parse_metrics_path(path).items() if k != "split"}
        training_file = path.parent / "checkpoint" / "training.json"
        if tuple(key.values()) in seen or not training_file.is_file():
            continue
        seen.add(tuple(key.values()))
        training = json.loads(training_file.read_text(encoding="utf-8"))
        if objective(training) != "grpo":
            continue
        for logged in training.get("reward_history", []):
            rows.append({**key, **logged})
    columns = [*RUN_KEY[:-1], "step", "reward"]
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=columns)
    extra = sorted(c for c in df.columns if c not in columns)
    return df[columns + extra].sort_values(columns[:-1], ignore_index=True)


def missing_runs(df: pd.DataFrame) -> pd.DataFrame:
    """Runs x splits the grid implies but the table lacks, so an average over fewer seeds,
    a point compared on fewer seeds or a blank cell never passes unnoticed. The grid: every
    model x dataset x split seen, for each variant the points and the seeds seen for it
    anywhere (a base model is evaluated once, seed 0)."""
    present = set(df[RUN_KEY].itertuples(index=False, name=None))
    models, datasets, splits = (sorted(df[k].unique()) for k in ("model", "dataset", "split"))
    expected = [
        (m, d, v, p, int(seed), sp)
        for v, group in df.groupby("variant", sort=True)
        for p in sorted(group["point"].unique())
        for seed in sorted(group["seed"].unique())
        for m in models
        for d in datasets
        for sp in splits
    ]
    return pd.DataFrame([k for k in expected if k not in present], columns=RUN_KEY)


def describe_missing(missing: pd.DataFrame, limit: int = 10) -> str:
    keys = [
        f"{r.model}/{r.dataset}/{sweep.join_run_name(r.variant, r.point)}/seed{r.seed} {r.split}"
        for r in missing.itertuples()
    ]
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return f"{len(keys)} run splits missing from the grid: {', '.join(keys[:limit])}{more}"


def check_protocols(df: pd.DataFrame) -> None:
    """Refuse tables that mix task protocol versions within a dataset."""
    for dataset, group in df.groupby("dataset"):
        versions = sorted(set(group["protocol_version"].dropna()))
        if len(versions) > 1:
            stale = group[group["protocol_version"] != max(versions)]
            runs = sorted(
                {
                    f"{r.model}/{sweep.join_run_name(r.variant, r.point)}/seed{r.seed}"
                    for r in stale.itertuples()
                }
            )
            more = ", ..." if len(runs) > 5 else ""
            raise ValueError(
                f"refusing to aggregate {dataset}: runs under protocol versions {versions} are "
                f"mixed; rerun the older ones ({', '.join(runs[:5])}{more})"
            )


def _mean_std(values: list[float]) -> tuple[float, float | None]:
    s = pd.Series(values, dtype=float)
    return float(s.mean()), (float(s.std(ddof=1)) if len(s) > 1 else None)


def summary_table(
    df: pd.DataFrame, split: str = "test", refs: dict | None = None, metric: str = "accuracy"
) -> pd.DataFrame:
    """Model x variant rows; per dataset ``<D>`` (mean %), ``<D> std``, ``<D> paper``;
    ``Average`` / ``Average std``; ``seeds`` and ``trainable_share``. ``df`` holds one point
    per (model, dataset, variant): the selected ones (``selection.selected_rows``).
    ``metric``: ``accuracy`` (the official parser) or ``accuracy_strict``."""
    refs = refs or {}
    part = df[df["split"] == split]
    several = part.groupby(["model", "dataset", "variant"])["point"].nunique()
    if (several > 1).any():
        model, dataset, variant = several[several > 1].index[0]
        raise ValueError(
            f"{model}/{dataset}/{variant} has several sweep points: a summary shows one per "
            "variant, so pass the selected rows (steering.pipeline.selection.selected_rows)"
        )
    datasets = sorted(part["dataset"].unique())
    rows = []
    for (model, variant), g in part.groupby(["model", "variant"], sort=True):
        row = {
            "model": model,
            "variant": variant,
            "seeds": g["seed"].nunique(),
            "trainable_share": float(g["trainable_share"].max()),
            "length_grouped": "batch_order" in g and bool((g["batch_order"] == GROUPED).any()),
            "grpo": "objective" in g and bool((g["objective"] == "grpo").any()),
        }
        paper_model = refs.get("models", {}).get(model)
        paper_method = refs.get("variants", {}).get(variant)
        for d in datasets:
            acc = 100 * g[g["dataset"] == d][metric].dropna()
            row[d], row[f"{d} std"] = _mean_std(list(acc)) if len(acc) else (math.nan, None)
            row[f"{d} paper"] = reference(paper_model, paper_method, d)
        per_seed = 100 * g.pivot_table(index="seed", columns="dataset", values=metric)
        complete = per_seed.dropna()
        if len(complete) and per_seed.shape[1] == len(datasets):
            row["Average"], row["Average std"] = _mean_std(list(complete.mean(axis=1)))
        else:
            row["Average"], row["Average std"] = math.nan, None
        refs_row = [row[f"{d} paper"] for d in datasets]
        row["Average paper"] = (
            sum(refs_row) / len(refs_row) if all(r is not None for r in refs_row) else None
        )
        rows.append(row)
    rows = chance_rows(part, datasets) + rows
    first = {CHANCE: 0, BASE: 1}  # the yardsticks above the methods
    rows.sort(key=lambda r: (r["model"], first.get(r["variant"], 2), r["variant"]))
    return pd.DataFrame(rows)


CHANCE, BASE = "chance", "base"


def chance_rows(part: pd.DataFrame, datasets: list[str]) -> list[dict]:
    """A ``chance`` row per model: what guessing scores on each dataset's evaluated rows
    (uniform over the choices, or the majority class: ``Task.chance``), so a method's gain
    over chance stands beside it; none where the metrics predate the field."""
    if "chance" not in part or part["chance"].isna().all():
        return []
    rows = []
    for model, g in part.groupby("model", sort=True):
        row = {"model": model, "variant": CHANCE, "seeds": 0, "trainable_share": 0.0}
        row["length_grouped"] = row["grpo"] = False
        for d in datasets:
            values = 100 * g[g["dataset"] == d]["chance"].dropna()
            row[d], row[f"{d} std"] = (
                (float(values.mean()), None) if len(values) else (math.nan, None)
            )
            row[f"{d} paper"] = None
        known = [row[d] for d in datasets if not math.isnan(row[d])]
        row["Average"] = sum(known) / len(known) if len(known) == len(datasets) else math.nan
        row["Average std"], row["Average paper"] = None, None
        rows.append(row)
    return rows


def cell(mean: float, std: float | None, pm: str) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    return f"{mean:.1f}" if std is None or math.isnan(std) else f"{mean:.1f} {pm} {std:.1f}"


def interval(low, high) -> str:
    """`` [low, high]``: a cell's 95 % interval (``comparisons.summary_intervals``), or ""."""
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return ""
    return f" [{low:.1f}, {high:.1f}]"


def summary_datasets(summary: pd.DataFrame) -> list[str]:
    """The dataset columns of a summary (each has a ``<D> std`` beside it; not Average)."""
    return [c for c in summary.columns if f"{c} std" in summary.columns and c != "Average"]


def display(summary: pd.DataFrame, pm: str, mark: str = "†") -> tuple[list[str], list[list[str]]]:
    datasets = summary_datasets(summary)
    with_paper = [d for d in [*datasets, "Average"] if summary[f"{d} paper"].notna().any()]
    header = ["model", "variant", "params %"]
    for d in [*datasets, "Average"]:
        header.append(d)
        if d in with_paper:
            header.append(f"{d} (paper)")
    body = []
    for r in summary.to_dict("records"):
        variant = r["variant"] + (f" {GRPO_MARK}" if r.get("grpo") else "")
        variant += f" {mark}" if r.get("length_grouped") else ""
        share = "-" if r["variant"] == CHANCE else f"{100 * r['trainable_share']:.3g}"
        line = [r["model"], variant, share]
        for d in [*datasets, "Average"]:
            line.append(
                cell(r[d], r[f"{d} std"], pm) + interval(r.get(f"{d} low"), r.get(f"{d} high"))
            )
            if d in with_paper:
                ref = r[f"{d} paper"]
                line.append(
                    "-"
                    if ref is None or (isinstance(ref, float) and math.isnan(ref))
                    else f"{ref:.1f}"
                )
        body.append(line)
    return header, body


def to_markdown(summary: pd.DataFrame) -> str:
    header, body = display(summary, "±")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines) + "\n" + order_note(summary)


GRPO_MARK = "(GRPO)"


def order_note(summary: pd.DataFrame) -> str:
    """The footnotes of marked rows: † (some run trained on length-grouped batches) and
    (GRPO) (trained by reinforcement learning)."""
    notes = []
    if "grpo" in summary and summary["grpo"].any():
        notes.append(
            f"\n{GRPO_MARK} trained with GRPO (`objective: grpo`: reinforcement learning on the "
            "task's rewards), not by the paper's supervised fine-tuning; the reward curves are "
            "in rewards.csv and plots/rewards.png.\n"
        )
    if "length_grouped" in summary and summary["length_grouped"].any():
        notes.append(
            "\n† trained on length-grouped batches (`length_grouping`), not the paper's random "
            "batch order: faster, but not directly comparable with the paper.\n"
        )
    return "".join(notes)


def to_latex(summary: pd.DataFrame) -> str:
    header, body = display(summary, "$\\pm$", mark="\\textsuperscript{\\dag}")

    def esc(text: str) -> str:
        return re.sub(r"([_%&#])", r"\\\1", text)

    lines = [
        "\\begin{tabular}{ll" + "r" * (len(header) - 2) + "}",
        "\\toprule",
        " & ".join(esc(h) for h in header) + " \\\\",
        "\\midrule",
        *(" & ".join(esc(c) if "$" not in c else c for c in row) + " \\\\" for row in body),
        "\\bottomrule",
        "\\end{tabular}",
    ]
    return "\n".join(lines) + "\n"
