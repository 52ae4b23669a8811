"""Model selection over sweep points: chosen on validation, reported on test (no torch).

For each (model, dataset, variant) of a long table (``steering/pipeline/results.py``), the
candidates are the variant's sweep points (``steering/pipeline/sweep.py``; a variant without
a sweep has one). The rule, in full:

1. The seeds of a variant are those seen for it anywhere in the table, and so are its points.
   A point *competes* when it has validation accuracy for every one of those seeds. A point
   lacking some is *incomplete*: it is named and left out, never compared on fewer seeds.
2. The selected point has the highest mean validation accuracy over seeds. Means equal to
   9 decimals are a tie, which goes to the smallest settings: values compared key by key in
   alphabetical key order, numbers ascending (the smaller learning rate), words
   alphabetically, null first.
3. Reported: that point's test accuracy, mean and sample standard deviation over its seeds.

No test number enters the choice, and no seed is chosen (the mean over seeds competes: never
best-of-seeds). A variant with a single point needs no choice: it is reported even without
validation runs. Accuracies here are in % like the summary tables.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from steering.pipeline import sweep
from steering.pipeline.results import cell, interval

GROUP = ["model", "dataset", "variant"]
SELECTION_COLUMNS = [
    "model",
    "dataset",
    "variant",
    "point",
    "val_mean",
    "val_std",
    "test_mean",
    "test_std",
    "seeds",
    "points",
]


@dataclass
class Selection:
    """``table``: one row per (model, dataset, variant) with a selected point
    (``SELECTION_COLUMNS``). ``incomplete``: the points left out, with the seeds they lack.
    ``unselected``: groups where no point could compete, with the reason."""

    table: pd.DataFrame
    incomplete: list[str] = field(default_factory=list)
    unselected: list[str] = field(default_factory=list)

    def warnings(self) -> list[str]:
        return [*self.incomplete, *self.unselected]


def value_order(value) -> tuple:
    """A sort key over swept values: null first, then numbers ascending, then words."""
    if value is None:
        return (0, 0)
    if isinstance(value, (int, float)):
        return (1, value)
    return (2, str(value))


def settings_order(label: str) -> tuple:
    """A sort key over point labels: values in alphabetical key order, by ``value_order``."""
    settings = sweep.parse_label(label)
    return tuple((k, value_order(settings[k])) for k in sorted(settings))


def _mean_std(values) -> tuple[float, float]:
    s = 100 * pd.Series(list(values), dtype=float)
    if s.empty:
        return math.nan, math.nan
    return float(s.mean()), (float(s.std(ddof=1)) if len(s) > 1 else math.nan)


def _name(model: str, dataset: str, variant: str, point: str) -> str:
    return f"{model}/{dataset}/{sweep.join_run_name(variant, point)}"


def select(df: pd.DataFrame) -> Selection:
    """The selected point of every (model, dataset, variant) in the long table ``df``."""
    seeds_of = {v: sorted(g["seed"].unique()) for v, g in df.groupby("variant")}
    points_of = {
        v: sorted(g["point"].unique(), key=settings_order) for v, g in df.groupby("variant")
    }
    by_split = {
        split: {key: g.sort_values("seed") for key, g in part.groupby([*GROUP, "point"])}
        for split, part in df.groupby("split")
    }
    val, test = by_split.get("validation", {}), by_split.get("test", {})
    rows, incomplete, unselected = [], [], []
    for model, dataset, variant in (
        df[GROUP].drop_duplicates().sort_values(GROUP).itertuples(index=False, name=None)
    ):
        candidates = points_of[variant]
        scores = []  # (point, validation mean, validation std)
        for point in candidates:
            accs = val.get((model, dataset, variant, point), df.iloc[:0])
            lacking = sorted(set(seeds_of[variant]) - set(accs["seed"]))
            if lacking and len(candidates) > 1:
                incomplete.append(
                    f"{_name(model, dataset, variant, point)} lacks validation for seed(s) "
                    f"{', '.join(map(str, lacking))}: left out of the selection"
                )
                continue
            scores.append((point, *_mean_std(accs["accuracy"])))
        if not scores:
            unselected.append(
                f"{model}/{dataset}/{variant}: no point has validation runs for every seed "
                f"({', '.join(map(str, seeds_of[variant]))}); nothing selected"
            )
            continue
        point, val_mean, val_std = min(scores, key=_rank)
        chosen = test.get((model, dataset, variant, point), df.iloc[:0])
        test_mean, test_std = _mean_std(chosen["accuracy"])
        seeds = chosen if len(chosen) else val.get((model, dataset, variant, point), chosen)
        rows.append(
            {
                "model": model,
                "dataset": dataset,
                "variant": variant,
                "point": point,
                "val_mean": val_mean,
                "val_std": val_std,
                "test_mean": test_mean,
                "test_std": test_std,
                "seeds": int(seeds["seed"].nunique()),
                "points": len(scores),
            }
        )
    return Selection(pd.DataFrame(rows, columns=SELECTION_COLUMNS), incomplete, unselected)


def _rank(score: tuple[str, float, float]) -> tuple:
    """Highest validation mean first (equal to 9 decimals: a tie), then smallest settings."""
    point, mean, _ = score
    return (-round(mean, 9) if not math.isnan(mean) else math.inf, settings_order(point))


def selected_rows(df: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """The long table's rows of the selected points only (one point per model/dataset/variant),
    the input of the summaries and the per-variant plots."""
    keys = table[[*GROUP, "point"]]
    return df.merge(keys, on=[*GROUP, "point"], how="inner").sort_values(
        ["model", "dataset", "variant", "seed", "split"], ignore_index=True
    )


def sweep_table(df: pd.DataFrame, split: str, table: pd.DataFrame) -> pd.DataFrame:
    """Every point of every variant on ``split``: mean and std over seeds (%), the number of
    seeds, whether it is the selected point, and its settings as columns of their own."""
    part = df[df["split"] == split]
    chosen = set(table[[*GROUP, "point"]].itertuples(index=False, name=None))
    rows = []
    for (model, dataset, variant, point), g in part.groupby([*GROUP, "point"], sort=False):
        mean, std = _mean_std(g.sort_values("seed")["accuracy"])
        rows.append(
            {
                "model": model,
                "dataset": dataset,
                "variant": variant,
                "point": point,
                "mean": mean,
                "std": std,
                "seeds": g["seed"].nunique(),
                "selected": (model, dataset, variant, point) in chosen,
                **sweep.parse_label(point),
            }
        )
    out = pd.DataFrame(rows)
    if out.empty:
        return pd.DataFrame(columns=[*GROUP, "point", "mean", "std", "seeds", "selected"])
    order = out["point"].map(settings_order)
    return (
        out.assign(_order=order)
        .sort_values([*GROUP, "_order"], kind="stable")
        .drop(columns="_order")
        .reset_index(drop=True)
    )


def selection_markdown(selection) -> str:
    """A ``selection.Selection`` as a Markdown table, the points left out listed under it."""
    header = ["model", "dataset", "variant", "selected point", "validation", "test", "seeds"]
    header += ["points", "stability"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in selection.table.itertuples():
        cells = [r.model, r.dataset, r.variant, r.point or "-", cell(r.val_mean, r.val_std, "±")]
        low, high = getattr(r, "test_low", math.nan), getattr(r, "test_high", math.nan)
        cells.append(cell(r.test_mean, r.test_std, "±") + interval(low, high))
        stable = getattr(r, "stability", math.nan)
        cells += [str(r.seeds), str(r.points), "-" if pd.isna(stable) else f"{stable:.0%}"]
        lines.append("| " + " | ".join(cells) + " |")
    notes = [f"- {w}" for w in selection.warnings()]
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def selection_note(table: pd.DataFrame) -> str:
    """Which sweep point each swept variant's cells show, under a Markdown summary ("" when
    nothing was swept). ``table``: ``selection.Selection.table``."""
    swept = table[table["points"] > 1]
    if swept.empty:
        return ""
    lines = [
        "",
        "Selected sweep points (best mean validation accuracy over seeds; every point in "
        "selection.csv and sweep_<split>.csv):",
    ]
    for (model, variant), g in swept.groupby(["model", "variant"], sort=True):
        picks = ", ".join(f"{r.dataset} {r.point}" for r in g.itertuples())
        lines.append(f"- {model} {variant}: {picks}")
    return "\n".join(lines) + "\n"
