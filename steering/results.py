"""Aggregating run results into tables and plots (no torch import).

Long table: one row per run x split, read from ``results/runs/{model}/{dataset}/{variant}/
seed{seed}/{split}.metrics.json`` and the run's ``checkpoint/training.json``. Summary: for one
split, mean and sample standard deviation over seeds of the accuracy (%), one row per
(model, variant), one column per dataset, an ``Average`` column (the per-seed mean over
datasets, then mean and std over seeds), and the paper's number beside each cell whose row
maps to a reference (``steering/reference.py``). Runs of one dataset under different task
protocol versions are never mixed.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pandas as pd

from steering.reference import reference

METRICS_PATH = re.compile(
    r"(?:^|/)runs/(?P<model>[^/]+)/(?P<dataset>[^/]+)/(?P<variant>[^/]+)/seed(?P<seed>\d+)/"
    r"(?P<split>[^/]+)\.metrics\.json$"
)
LONG_COLUMNS = [
    "model",
    "dataset",
    "variant",
    "seed",
    "split",
    "accuracy",
    "n",
    "trainable_parameters",
    "trainable_share",
    "train_time_s",
    "eval_tokens_per_s",
    "protocol_version",
    "git_commit",
]


def parse_metrics_path(path: str | Path) -> dict:
    m = METRICS_PATH.search(Path(path).as_posix())
    if m is None:
        raise ValueError(
            f"{path} is not a run metrics file "
            "(expected .../runs/<model>/<dataset>/<variant>/seed<N>/<split>.metrics.json)"
        )
    return {**m.groupdict(), "seed": int(m["seed"])}


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
                "n": metrics["n"],
                "trainable_parameters": training.get("trainable_parameters", 0),
                "trainable_share": training.get("trainable_share", 0.0),
                "train_time_s": training.get("train_runtime_s"),
                "eval_tokens_per_s": metrics.get("tokens_per_s"),
                "protocol_version": prov.get("protocol_version"),
                "git_commit": prov.get("git_commit"),
            }
        )
    df = pd.DataFrame(rows, columns=LONG_COLUMNS)
    check_protocols(df)
    return df.sort_values(["model", "dataset", "variant", "seed", "split"], ignore_index=True)


RUN_KEY = ["model", "dataset", "variant", "seed", "split"]


def missing_runs(df: pd.DataFrame) -> pd.DataFrame:
    """Runs x splits the grid implies but the table lacks, so an average over fewer seeds
    or a blank cell never passes unnoticed. The grid: every model x dataset x split seen, for
    each variant the seeds seen for it anywhere (a base model is evaluated once, seed 0)."""
    present = set(df[RUN_KEY].itertuples(index=False, name=None))
    models, datasets, splits = (sorted(df[k].unique()) for k in ("model", "dataset", "split"))
    expected = [
        (m, d, v, int(seed), sp)
        for v, group in df.groupby("variant", sort=True)
        for seed in sorted(group["seed"].unique())
        for m in models
        for d in datasets
        for sp in splits
    ]
    return pd.DataFrame([k for k in expected if k not in present], columns=RUN_KEY)


def describe_missing(missing: pd.DataFrame, limit: int = 10) -> str:
    keys = [
        f"{r.model}/{r.dataset}/{r.variant}/seed{r.seed} {r.split}" for r in missing.itertuples()
    ]
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return f"{len(keys)} run splits missing from the grid: {', '.join(keys[:limit])}{more}"


def check_protocols(df: pd.DataFrame) -> None:
    """Refuse tables that mix task protocol versions within a dataset."""
    for dataset, group in df.groupby("dataset"):
        versions = sorted(set(group["protocol_version"].dropna()))
        if len(versions) > 1:
            stale = group[group["protocol_version"] != max(versions)]
            runs = sorted({f"{r.model}/{r.variant}/seed{r.seed}" for r in stale.itertuples()})
            more = ", ..." if len(runs) > 5 else ""
            raise ValueError(
                f"refusing to aggregate {dataset}: runs under protocol versions {versions} are "
                f"mixed; rerun the older ones ({', '.join(runs[:5])}{more})"
            )


def _mean_std(values: list[float]) -> tuple[float, float | None]:
    s = pd.Series(values, dtype=float)
    return float(s.mean()), (float(s.std(ddof=1)) if len(s) > 1 else None)


def summary_table(df: pd.DataFrame, split: str = "test", refs: dict | None = None) -> pd.DataFrame:
    """Model x variant rows; per dataset ``<D>`` (mean %), ``<D> std``, ``<D> paper``;
    ``Average`` / ``Average std``; ``seeds`` and ``trainable_share``."""
    refs = refs or {}
    part = df[df["split"] == split]
    datasets = sorted(part["dataset"].unique())
    rows = []
    for (model, variant), g in part.groupby(["model", "variant"], sort=True):
        row = {
            "model": model,
            "variant": variant,
            "seeds": g["seed"].nunique(),
            "trainable_share": float(g["trainable_share"].max()),
        }
        paper_model = refs.get("models", {}).get(model)
        paper_method = refs.get("variants", {}).get(variant)
        for d in datasets:
            acc = 100 * g[g["dataset"] == d]["accuracy"]
            row[d], row[f"{d} std"] = _mean_std(list(acc)) if len(acc) else (math.nan, None)
            row[f"{d} paper"] = reference(paper_model, paper_method, d)
        per_seed = 100 * g.pivot_table(index="seed", columns="dataset", values="accuracy")
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
    return pd.DataFrame(rows)


def _cell(mean: float, std: float | None, pm: str) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    return f"{mean:.1f}" if std is None or math.isnan(std) else f"{mean:.1f} {pm} {std:.1f}"


def _display(summary: pd.DataFrame, pm: str) -> tuple[list[str], list[list[str]]]:
    datasets = [c for c in summary.columns if f"{c} std" in summary.columns and c != "Average"]
    with_paper = [d for d in [*datasets, "Average"] if summary[f"{d} paper"].notna().any()]
    header = ["model", "variant", "params %"]
    for d in [*datasets, "Average"]:
        header.append(d)
        if d in with_paper:
            header.append(f"{d} (paper)")
    body = []
    for r in summary.to_dict("records"):
        line = [r["model"], r["variant"], f"{100 * r['trainable_share']:.3g}"]
        for d in [*datasets, "Average"]:
            line.append(_cell(r[d], r[f"{d} std"], pm))
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
    header, body = _display(summary, "±")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines) + "\n"


def to_latex(summary: pd.DataFrame) -> str:
    header, body = _display(summary, "$\\pm$")

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


def plot_accuracy_by_variant(df: pd.DataFrame, path: str | Path, split: str = "test") -> None:
    """A panel per dataset: mean accuracy per variant (a bar colour per model), seeds as dots."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    part = df[df["split"] == split]
    datasets, variants, models = (sorted(part[c].unique()) for c in ("dataset", "variant", "model"))
    fig, axes = plt.subplots(
        1, len(datasets), figsize=(3.2 * len(datasets) + 1, 3.6), squeeze=False
    )
    width = 0.8 / max(1, len(models))
    for ax, dataset in zip(axes[0], datasets, strict=True):
        for k, model in enumerate(models):
            g = part[(part["dataset"] == dataset) & (part["model"] == model)]
            for i, variant in enumerate(variants):
                acc = 100 * g[g["variant"] == variant]["accuracy"]
                if not len(acc):
                    continue
                x = i + (k - (len(models) - 1) / 2) * width
                ax.bar(
                    x, acc.mean(), width, color=f"C{k}", alpha=0.7, label=model if i == 0 else None
                )
                ax.scatter([x] * len(acc), acc, color="black", s=8, zorder=3)
        ax.set_title(dataset)
        ax.set_xticks(range(len(variants)), variants, rotation=45, ha="right", fontsize=8)
        ax.set_ylim(0, 100)
    axes[0][0].set_ylabel(f"{split} accuracy (%)")
    axes[0][-1].legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    _save(fig, path)


def plot_accuracy_vs_share(df: pd.DataFrame, path: str | Path, split: str = "test") -> None:
    """Mean accuracy over datasets and seeds against the trainable share (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker  # noqa: F401 - used through matplotlib.ticker below

    part = df[(df["split"] == split) & (df["trainable_share"] > 0)]
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for k, (model, g) in enumerate(part.groupby("model")):
        points = g.groupby("variant").agg(
            share=("trainable_share", "max"), acc=("accuracy", "mean")
        )
        ax.scatter(100 * points["share"], 100 * points["acc"], color=f"C{k}", label=model)
        for variant, p in points.iterrows():
            ax.annotate(
                variant,
                (100 * p["share"], 100 * p["acc"]),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
            )
    ax.set_xscale("log")
    ax.margins(x=0.25)
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel("trainable parameters (% of the base model)")
    ax.set_ylabel(f"mean {split} accuracy (%)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)


def _save(fig, path: str | Path) -> None:
    import matplotlib.pyplot as plt

    from steering.io import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
