"""Which differences are real: paired comparisons between variants, intervals for the summary
cells, and how stable the selection on validation is (no torch).

Inputs: the selected rows of the long table (``selection.selected_rows``) and every run's
per-item verdicts (``steering/pipeline/items.py``); the statistics are
``steering/pipeline/intervals.py``'s.

comparisons.csv / .md: for every (model, dataset, split), every variant at its selected point
against the reference variant (``compare_to``; default ``lora``, else ``full``, else
``base``): ``diff`` (points, variant minus reference), its 95 % paired-bootstrap interval,
the paired permutation test's ``p_value``, ``n_items`` and ``seeds``, under the official
parser and (``_strict`` columns) the strict one, with ``paper_diff`` where the paper has both
numbers. An item's score is its mean correctness over the seeds both variants have; an
untrained reference (``base``: no training, so no seed) is compared with every seed of the
variant. Two runs evaluated on different items (a different ``max_eval_samples``, other
data) are never paired: such a pair is left out with a warning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from steering.pipeline import intervals
from steering.pipeline.items import Items
from steering.pipeline.reference import reference as paper_number
from steering.pipeline.results import BASE, CHANCE, summary_datasets
from steering.pipeline.selection import settings_order

DEFAULT_REFERENCES = ("lora", "full", BASE)
METRICS = {"accuracy": "", "accuracy_strict": "_strict"}  # metric -> column suffix
STAT_COLUMNS = ["diff", "ci_low", "ci_high", "p_value"]
COLUMNS = [
    "model",
    "dataset",
    "split",
    "variant",
    "reference",
    "diff",
    "ci_low",
    "ci_high",
    "p_value",
    "n_items",
    "seeds",
    *(f"{c}_strict" for c in STAT_COLUMNS),
    "paper_diff",
    "resamples",
    "bootstrap_seed",
]


def default_reference(variants) -> str | None:
    """``lora`` when present, else ``full``, else ``base`` (None: none of them ran)."""
    return next((v for v in DEFAULT_REFERENCES if v in set(variants)), None)


SELECTION_EXTRA = ["test_low", "test_high", "stability"]  # selection.csv's columns from here


@dataclass
class Uncertainty:
    """Everything the tables add: the comparisons table, the pairs left out (warnings), each
    summary cell's interval by (model, variant, dataset or "Average", split, metric) in %, and
    the selection table with ``SELECTION_EXTRA``."""

    comparisons: pd.DataFrame
    warnings: list[str]
    cells: dict[tuple, tuple[float, float]]
    selection: pd.DataFrame


def _digest(runs: dict[int, Items]) -> str | None:
    digests = {it.digest for it in runs.values()}
    return digests.pop() if len(digests) == 1 else None


class _Columns:
    """Per-item vectors of one key, asked for by name, resampled together per item count."""

    def __init__(self) -> None:
        self.vectors: dict[str, np.ndarray] = {}

    def add(self, name, vector) -> None:
        self.vectors[name] = np.asarray(vector, dtype=np.float32)

    def resample(self, resampler, key, flip: set) -> dict:
        """name -> its bootstrap means (R,), and (name, "flipped") -> its sign-flip means for
        the names in ``flip``: one matrix product per item count."""
        out = {}
        by_n: dict[int, list] = {}
        for name, v in self.vectors.items():
            by_n.setdefault(len(v), []).append(name)
        for names in by_n.values():
            stacked = np.stack([self.vectors[n] for n in names], axis=1)  # (n, m)
            for name, col in zip(names, resampler.means(key, stacked).T, strict=True):
                out[name] = col
            flipping = [n for n in names if n in flip]
            if flipping:
                stacked = np.stack([self.vectors[n] for n in flipping], axis=1)
                for name, col in zip(flipping, resampler.flipped(key, stacked).T, strict=True):
                    out[name, "flipped"] = col
        return out


def uncertainty(
    df: pd.DataFrame,
    best: pd.DataFrame,
    table: pd.DataFrame,
    items: dict,
    compare_to: str | None,
    resampler: intervals.Resampler,
    refs: dict | None = None,
) -> Uncertainty:
    """The comparisons, the summary cells' intervals and the selection's, from the long table
    ``df``, its selected rows ``best``, the selection ``table`` and every run's ``items``
    (``items.read_all``), one (model, dataset, split) at a time: its items are resampled once
    for every variant, cell and point (the same resamples: paired)."""
    refs = refs or {}
    compare_to = compare_to or default_reference(best["variant"].unique())
    runs_of: dict[tuple, dict[int, Items]] = {}
    for (model, dataset, variant, point, seed, split), found in items.items():
        runs_of.setdefault((model, dataset, split, variant, point), {})[seed] = found
    selected = {(r.model, r.dataset, r.variant): r.point for r in table.itertuples()}
    untrained = set(best[best["objective"].isna()]["variant"])
    warnings: list[str] = []
    if compare_to is None:
        warnings.append("no reference variant (lora, full or base) ran: nothing compared")
    rows, cells, per_seed = [], {}, {}
    points_of = df.groupby(["model", "dataset", "variant"])["point"].unique()
    seeds_of = df.groupby("variant")["seed"].unique()
    stability = {}
    for (model, dataset, split), g in best.groupby(["model", "dataset", "split"], sort=True):
        key = (model, dataset, split)
        variants = sorted(set(g["variant"]) - {CHANCE})
        runs = {
            v: runs_of.get((*key, v, selected.get((model, dataset, v), "")), {}) for v in variants
        }
        runs = {v: r for v, r in runs.items() if r and _digest(r) is not None}
        columns, pairs = _Columns(), []
        for v, found in runs.items():
            for metric in METRICS:
                for seed, it in found.items():
                    columns.add((v, metric, seed), it.scores[metric])
        if compare_to is not None and compare_to not in set(g["variant"]):
            warnings.append(f"{model}/{dataset} {split}: no {compare_to} runs to compare with")
        for v in [v for v in runs if compare_to in runs and v != compare_to]:
            pair = _pair(runs[v], runs[compare_to], v in untrained or compare_to in untrained)
            where = f"{model}/{dataset} {split}: {v} vs {compare_to}"
            if isinstance(pair, str):
                warnings.append(f"{where}: {pair}; not compared")
                continue
            pairs.append((v, *pair))
            for metric in METRICS:
                a = np.mean([runs[v][s].scores[metric] for s in pair[0]], axis=0)
                b = np.mean([runs[compare_to][s].scores[metric] for s in pair[1]], axis=0)
                columns.add(("diff", v, metric), a - b)
        swept = []
        if split == "validation":
            for v in variants:
                points = sorted(points_of.get((model, dataset, v), []), key=settings_order)
                counts = _point_counts(runs_of, key, v, points, seeds_of.get(v, []))
                if len(counts) > 1 and selected.get((model, dataset, v)) in counts:
                    swept.append((v, list(counts)))
                    for point, vector in counts.items():
                        columns.add(("point", v, point), vector)
        flip = {n for n in columns.vectors if n[0] == "diff"}
        boot = columns.resample(resampler, key, flip)
        for v, found in runs.items():
            for metric in METRICS:
                seeds = sorted(found)
                stack = np.stack([boot[v, metric, s] for s in seeds], axis=1)  # (R, k)
                per_seed[model, v, dataset, split, metric] = (seeds, stack)
                draws = resampler.seed_draws((model, dataset, v, split), len(seeds))
                low, high = intervals.over_seeds(stack, draws)
                cells[model, v, dataset, split, metric] = (100 * low, 100 * high)
        for v, seeds_a, _ in pairs:
            row = {"model": model, "dataset": dataset, "split": split, "variant": v}
            row |= {"reference": compare_to, "seeds": len(seeds_a)}
            for metric, suffix in METRICS.items():
                name = ("diff", v, metric)
                found = intervals.paired(columns.vectors[name], boot[name], boot[name, "flipped"])
                row["n_items"] = found.n_items
                row[f"diff{suffix}"] = 100 * found.diff
                row[f"ci_low{suffix}"] = 100 * found.low
                row[f"ci_high{suffix}"] = 100 * found.high
                row[f"p_value{suffix}"] = found.p_value
            row["paper_diff"] = _paper_diff(refs, model, v, compare_to, dataset)
            row["resamples"], row["bootstrap_seed"] = resampler.resamples, resampler.seed
            rows.append(row)
        for v, points in swept:
            n = len(columns.vectors["point", v, points[0]])
            sums = np.stack([boot["point", v, p] for p in points], axis=1) * n
            won = intervals.winners(sums, list(range(len(points))))
            chosen = points.index(selected[model, dataset, v])
            stability[model, dataset, v] = float((won == chosen).mean())
    _averages(per_seed, cells, resampler)
    picked = table.copy()
    for column in SELECTION_EXTRA:
        picked[column] = math.nan
    for i, r in picked.iterrows():
        low_high = cells.get((r["model"], r["variant"], r["dataset"], "test", "accuracy"))
        if low_high is not None:
            picked.loc[i, ["test_low", "test_high"]] = list(low_high)
        picked.loc[i, "stability"] = stability.get((r["model"], r["dataset"], r["variant"]))
    return Uncertainty(pd.DataFrame(rows, columns=COLUMNS), warnings, cells, picked)


def _pair(runs: dict, ref: dict, unseeded: bool):
    """(seeds of the variant, seeds of the reference) to average, or why they cannot pair."""
    if unseeded:  # an untrained side has nothing a seed changes: every seed of the other
        seeds_a, seeds_b = sorted(runs), sorted(ref)
    else:
        seeds_a = seeds_b = sorted(set(runs) & set(ref))
    if not seeds_a:
        return "no seed in common"
    if _digest(runs) != _digest(ref):
        return "evaluated on different items"
    return seeds_a, seeds_b


def _point_counts(runs_of, key, variant, points, seeds) -> dict[str, np.ndarray]:
    """Each competing point's count of seeds right per validation item (the points with
    validation for every seed of the variant, on the same items), in settings order."""
    out, digests = {}, set()
    for point in points:
        runs = runs_of.get((*key, variant, point), {})
        if sorted(runs) != sorted(int(s) for s in seeds):
            continue  # incomplete: left out of the selection as well
        digests |= {it.digest for it in runs.values()}
        out[point] = np.sum([it.scores["accuracy"] for it in runs.values()], axis=0)
    return out if len(digests) == 1 else {}


def _averages(per_seed: dict, cells: dict, resampler) -> None:
    """The ``Average`` cells: each dataset's resampled per-seed means averaged over the
    datasets (the seeds all of them have), then the seeds resampled jointly."""
    groups: dict[tuple, dict] = {}
    for (model, v, dataset, split, metric), value in per_seed.items():
        groups.setdefault((model, v, split, metric), {})[dataset] = value
    datasets_of = {}
    for model, _, dataset, split, _ in per_seed:
        datasets_of.setdefault((model, split), set()).add(dataset)
    for (model, v, split, metric), by_dataset in groups.items():
        if set(by_dataset) != datasets_of[model, split]:
            continue
        common = sorted(set.intersection(*(set(s) for s, _ in by_dataset.values())))
        if not common:
            continue
        stack = np.mean(
            [x[:, [s.index(c) for c in common]] for s, x in by_dataset.values()], axis=0
        )
        draws = resampler.seed_draws((model, v, split), len(common))
        low, high = intervals.over_seeds(stack, draws)
        cells[model, v, "Average", split, metric] = (100 * low, 100 * high)


def _paper_diff(refs: dict, model, variant, compare_to, dataset) -> float | None:
    paper_model = refs.get("models", {}).get(model)
    names = refs.get("variants", {})
    a = paper_number(paper_model, names.get(variant), dataset)
    b = paper_number(paper_model, names.get(compare_to), dataset)
    return None if a is None or b is None else round(a - b, 2)


def with_intervals(summary: pd.DataFrame, cells: dict, split: str, metric: str) -> pd.DataFrame:
    """``summary`` (``results.summary_table``) with ``<D> low`` / ``<D> high`` (%) beside each
    cell and ``Average low`` / ``Average high`` (``Uncertainty.cells``); NaN where a cell
    lacks per-item verdicts or its runs saw different items."""
    summary = summary.copy()
    datasets = summary_datasets(summary)
    for d in [*datasets, "Average"]:
        bounds = [cells.get((r.model, r.variant, d, split, metric)) for r in summary.itertuples()]
        summary[f"{d} low"] = [math.nan if b is None else b[0] for b in bounds]
        summary[f"{d} high"] = [math.nan if b is None else b[1] for b in bounds]
    return summary


def to_markdown(table: pd.DataFrame, warnings: list[str]) -> str:
    """The comparisons as a Markdown table (official parser, then strict), warnings under."""
    header = ["model", "dataset", "split", "variant", "vs", "diff (95 % CI)", "p"]
    header += ["strict diff (95 % CI)", "strict p", "items", "seeds", "paper diff"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in table.itertuples():
        cells = [r.model, r.dataset, r.split, r.variant, r.reference]
        cells += [format_diff(r.diff, r.ci_low, r.ci_high), format_p(r.p_value)]
        cells += [
            format_diff(r.diff_strict, r.ci_low_strict, r.ci_high_strict),
            format_p(r.p_value_strict),
        ]
        paper = "-" if r.paper_diff is None or pd.isna(r.paper_diff) else f"{r.paper_diff:+.1f}"
        cells += [str(r.n_items), str(r.seeds), paper]
        lines.append("| " + " | ".join(cells) + " |")
    notes = [f"- {w}" for w in warnings]
    draws = (
        f"{table['resamples'].iloc[0]:,} resamples, seed {table['bootstrap_seed'].iloc[0]}"
        if len(table)
        else "no comparison"
    )
    legend = (
        "\ndiff: the variant's accuracy minus the reference's, in points, on the same items "
        "(each item's correctness averaged over the seeds); 95 % interval: paired bootstrap "
        f"over items; p: paired permutation test ({draws}; docs/pipeline.md, "
        '"Reading the intervals").\n'
    )
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n" + legend


def format_diff(diff, low, high) -> str:
    return "-" if pd.isna(diff) else f"{diff:+.1f} ({low:+.1f}, {high:+.1f})"


def format_p(p) -> str:
    return "-" if pd.isna(p) else ("< 0.001" if p < 0.001 else f"{p:.3f}")
