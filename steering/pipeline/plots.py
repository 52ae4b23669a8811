"""The aggregation's plots (no torch; matplotlib with the Agg backend, written atomically).

- ``plot_accuracy_by_variant``: a panel per dataset, a bar per variant and model (mean over
  seeds), each seed a dot, the 95 % interval as whiskers, chance as a dashed line.
- ``plot_accuracy_vs_share``: mean accuracy over datasets and seeds against the share of
  trainable parameters (log axis), a colour per model and a marker per variant.

Titles name the split and the metric and are wrapped to the figure's width; legends sit
outside the data, so no text overlaps another or leaves the canvas with one model or four.
- ``plot_sweep``: for one dataset, a panel per swept variant: validation and test accuracy
  against the swept value (log axis for learning rates), the mean over seeds as a line, each
  seed a dot, the selected point (``steering/pipeline/selection.py``) ringed.

- ``plot_rewards``: for GRPO runs, a panel per dataset: the mean weighted reward of each
  step's completions against the optimizer step, a line per run (model, variant, point, seed).

The first two take the selected rows (one point per variant), the sweep plot every point, the
reward plot ``results.reward_curves``.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from steering.pipeline import sweep
from steering.pipeline.selection import settings_order, value_order

SPLIT_STYLE = {"validation": "-", "test": "--"}
MARKERS = "osD^vP*X"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _wrap(text: str, width_in: float, fontsize: float) -> str:
    """``text`` broken into lines that fit ``width_in`` inches at ``fontsize`` points (a
    character of the default sans-serif font is at most ~0.6 em wide)."""
    import textwrap

    chars = max(20, int(0.92 * width_in * 72 / (0.6 * fontsize)))
    return "\n".join(textwrap.wrap(text, chars))


def _suptitle(fig, text: str, fontsize: float = 10) -> None:
    """Put ``text`` above the panels, wrapped to the figure's width (``tight_layout`` then
    leaves room for its lines)."""
    fig.suptitle(_wrap(text, fig.get_figwidth(), fontsize), fontsize=fontsize)


def plot_accuracy_by_variant(
    df: pd.DataFrame, path: str | Path, split: str = "test", summary: pd.DataFrame | None = None
):
    """A panel per dataset: mean accuracy per variant (a bar colour per model), seeds as dots,
    the cell's 95 % interval as an error bar where ``summary`` has one
    (``comparisons.summary_intervals``), the dataset's chance level as a dashed line; the
    models' legend under the panels, where it covers no bar."""
    plt = _pyplot()
    from matplotlib.patches import Patch

    part = df[df["split"] == split]
    datasets, variants, models = (sorted(part[c].unique()) for c in ("dataset", "variant", "model"))
    panel_width = max(3.0, 0.32 * len(variants) * max(1, len(models)) ** 0.5 + 1.0)
    ncols = min(3 if panel_width <= 5 else 2, max(1, len(datasets)))  # wide panels: 2 a row
    nrows = math.ceil(len(datasets) / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(panel_width * ncols + 0.6, 3.3 * nrows + 1.2), squeeze=False
    )
    width = 0.8 / max(1, len(models))
    for ax, dataset in zip(axes.flat, datasets, strict=False):
        for k, model in enumerate(models):
            g = part[(part["dataset"] == dataset) & (part["model"] == model)]
            for i, variant in enumerate(variants):
                acc = 100 * g[g["variant"] == variant]["accuracy"]
                if not len(acc):
                    continue
                x = i + (k - (len(models) - 1) / 2) * width
                ax.bar(x, acc.mean(), width, color=f"C{k}", alpha=0.75)
                ax.scatter([x] * len(acc), acc, color="black", s=8, zorder=3)
                low, high = _bounds(summary, model, variant, dataset)
                if low is not None:
                    err = [[max(0.0, acc.mean() - low)], [max(0.0, high - acc.mean())]]
                    ax.errorbar(x, acc.mean(), yerr=err, color="black", lw=0.8, capsize=2)
        chance = 100 * part[part["dataset"] == dataset].get("chance", pd.Series()).dropna()
        if len(chance):
            ax.axhline(chance.mean(), color="gray", ls="--", lw=0.8, label="chance")
        ax.set_title(dataset, fontsize=10)
        ax.set_xticks(range(len(variants)), variants, rotation=40, ha="right", fontsize=8)
        ax.set_ylim(0, 100)
        ax.set_ylabel("accuracy (%)", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    for ax in list(axes.flat)[len(datasets) :]:
        ax.axis("off")
    from matplotlib.lines import Line2D

    handles = [Patch(color=f"C{k}", alpha=0.75, label=m) for k, m in enumerate(models)]
    handles.append(Line2D([], [], color="gray", ls="--", lw=0.8, label="chance"))
    fig.legend(handles=handles, loc="lower center", ncol=min(5, len(handles)), fontsize=8)
    _suptitle(
        fig,
        f"{split} accuracy (%) per dataset: bars the mean over seeds, dots each seed, "
        "whiskers the 95 % interval (items and seeds resampled)",
    )
    legend_rows = math.ceil(len(models) / 4)
    fig.tight_layout(rect=(0, 0.03 + 0.3 * legend_rows / fig.get_figheight(), 1, 1))
    return _save(fig, path)


def _bounds(summary, model, variant, dataset) -> tuple[float | None, float | None]:
    if summary is None or f"{dataset} low" not in summary:
        return None, None
    row = summary[(summary["model"] == model) & (summary["variant"] == variant)]
    if not len(row) or pd.isna(row.iloc[0][f"{dataset} low"]):
        return None, None
    return float(row.iloc[0][f"{dataset} low"]), float(row.iloc[0][f"{dataset} high"])


def plot_accuracy_vs_share(df: pd.DataFrame, path: str | Path, split: str = "test"):
    """Mean accuracy over datasets and seeds against the trainable share (log scale): a colour
    per model, a marker per variant, both named in legends beside the axes (no labels on the
    points, which would overlap where variants sit close)."""
    plt = _pyplot()
    import matplotlib.ticker
    from matplotlib.lines import Line2D

    part = df[(df["split"] == split) & (df["trainable_share"] > 0)]
    variants = sorted(part["variant"].unique())
    models = sorted(part["model"].unique())
    marker = {v: MARKERS[i % len(MARKERS)] for i, v in enumerate(variants)}
    fill = {v: "full" if i < len(MARKERS) else "none" for i, v in enumerate(variants)}
    fig, ax = plt.subplots(figsize=(7.2, 4.0))
    for k, model in enumerate(models):
        g = part[part["model"] == model]
        points = g.groupby("variant").agg(
            share=("trainable_share", "max"), acc=("accuracy", "mean")
        )
        for variant, p in points.iterrows():
            ax.plot(
                100 * p["share"],
                100 * p["acc"],
                linestyle="",
                marker=marker[variant],
                fillstyle=fill[variant],
                color=f"C{k}",
                markersize=8,
                alpha=0.85,
            )
    ax.set_xscale("log")
    ax.margins(x=0.15, y=0.15)
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel("trainable parameters (% of the base model, log scale)")
    ax.set_ylabel(f"mean {split} accuracy (%)")
    ax.grid(alpha=0.3)
    ax.set_title(
        _wrap(f"{split} accuracy (mean over datasets and seeds) against trainable share", 5.0, 10),
        fontsize=10,
        pad=12,
    )
    by_variant = [
        Line2D([], [], color="gray", linestyle="", marker=marker[v], fillstyle=fill[v], label=v)
        for v in variants
    ]
    by_model = [Line2D([], [], color=f"C{k}", linewidth=6, label=m) for k, m in enumerate(models)]
    legends = ((by_variant, "variant", "upper left", 1.0), (by_model, "model", "lower left", 0.0))
    for i, (handles, title, loc, y) in enumerate(legends):
        if i:  # keep the one before: each legend() call replaces the axes' legend
            ax.add_artist(ax.get_legend())
        ax.legend(
            handles=handles,
            title=title,
            fontsize=7,
            title_fontsize=8,
            loc=loc,
            bbox_to_anchor=(1.02, y),
        )
    fig.tight_layout()
    return _save(fig, path)


def plot_rewards(curves: pd.DataFrame, path: str | Path):
    """A panel per dataset: the mean weighted reward per optimizer step of every GRPO run (a
    colour per model and variant, a line style per seed), legend under the panels; a figure
    that says so when no run trained with GRPO (the rule's output exists either way)."""
    plt = _pyplot()
    datasets = sorted(curves["dataset"].unique()) if len(curves) else []
    ncols = min(3, max(1, len(datasets)))
    nrows = max(1, math.ceil(len(datasets) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.0 * nrows + 1.2), squeeze=False)
    if not datasets:
        axes[0, 0].axis("off")
        axes[0, 0].text(0.5, 0.5, "no run of this grid trained with GRPO", ha="center")
        return _save(fig, path)
    runs = curves.drop_duplicates(["model", "variant", "point"])
    colour = {(r.model, r.variant, r.point): f"C{i % 10}" for i, r in enumerate(runs.itertuples())}
    seeds = sorted(curves["seed"].unique())
    styles = dict(zip(seeds, ["-", "--", ":", "-."] * (len(seeds) // 4 + 1), strict=False))
    for ax, dataset in zip(axes.flat, datasets, strict=False):
        part = curves[curves["dataset"] == dataset]
        for (model, variant, point, seed), g in part.groupby(
            ["model", "variant", "point", "seed"], sort=True
        ):
            ax.plot(g["step"], g["reward"], styles[seed], color=colour[(model, variant, point)])
        ax.set_title(dataset, fontsize=10)
        ax.set_xlabel("optimizer step", fontsize=8)
        ax.set_ylabel("mean reward", fontsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(datasets) :]:
        ax.axis("off")
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], color=c, label=f"{m} {v}" + (f"@{p}" if p else ""))
        for (m, v, p), c in colour.items()
    ]
    handles += [Line2D([], [], color="grey", ls=styles[s], label=f"seed {s}") for s in seeds]
    fig.legend(handles=handles, loc="lower center", ncol=min(3, len(handles)), fontsize=8)
    _suptitle(fig, "GRPO: mean weighted reward of each step's completions")
    legend_rows = math.ceil(len(handles) / 3)
    fig.tight_layout(rect=(0, 0.03 + 0.25 * legend_rows / fig.get_figheight(), 1, 1))
    return _save(fig, path)


def _accuracy_limits(acc: pd.Series, margin: float = 5.0, span: float = 20.0):
    """Y limits around accuracies in %: at least ``span`` wide, inside [0, 100] (a flat line
    at 0 shows as 0 to 20, not as -0.04 to 0.04)."""
    lo, hi = float(acc.min()) - margin, float(acc.max()) + margin
    if hi - lo < span:
        mid = (lo + hi) / 2
        lo, hi = mid - span / 2, mid + span / 2
    if lo < 0:
        lo, hi = 0.0, hi - lo
    if hi > 100:
        lo, hi = max(0.0, lo - (hi - 100)), 100.0
    return lo, hi


def _save(fig, path: str | Path):
    """Write ``fig`` as a PNG at ``path`` (atomically) and close it; the figure, drawn, for
    callers that inspect it (the tests: no two labels overlap)."""
    import matplotlib.pyplot as plt

    from steering.runtime.io import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return fig


def _x_key(settings: list[dict]) -> str:
    """The swept setting on the x axis: ``lr`` when swept, else the first that varies."""
    keys = sorted({k for s in settings for k in s})
    varying = [k for k in keys if len({repr(s.get(k)) for s in settings}) > 1] or keys
    return "lr" if "lr" in varying else varying[0]


def _first_at(x_of: dict[str, float], ticks: list[float]) -> list[str]:
    """For each tick, the first point label that sits there."""
    return [next(p for p, x in x_of.items() if x == t) for t in ticks]


def _is_rate(key: str) -> bool:
    return key == "lr" or key.endswith("_lr")


def plot_sweep(df: pd.DataFrame, table: pd.DataFrame, dataset: str, path: str | Path):
    """Validation and test accuracy against the swept value on ``dataset``: a panel per swept
    variant, a colour per model, the mean over seeds as a line (validation solid, test
    dashed), every seed a dot, the selected point ringed. Settings other than the x axis's
    (ReFT positions beside the rate, say) get a marker each. ``table`` is the selection."""
    plt = _pyplot()
    part = df[df["dataset"] == dataset]
    variants = sorted(v for v, g in part.groupby("variant") if (g["point"] != "").any())
    models = sorted(part["model"].unique())
    if not variants:
        fig, ax = plt.subplots(figsize=(5, 1.6))
        ax.axis("off")
        note = _wrap(f"{dataset}: no variant sweeps a setting", 4.6, 10)
        ax.text(0.5, 0.5, note, ha="center", va="center")
        return _save(fig, path)
    ncols = min(3, len(variants))
    nrows = math.ceil(len(variants) / ncols)
    width = max(6.4, 4.4 * ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, 3.3 * nrows + 1.1), squeeze=False)
    chosen = {
        (r.model, r.variant): r.point for r in table[table["dataset"] == dataset].itertuples()
    }
    for ax, variant in zip(axes.flat, variants, strict=False):
        g = part[part["variant"] == variant]
        labels = sorted(g["point"].unique(), key=settings_order)
        settings = {p: sweep.parse_label(p) for p in labels}
        key = _x_key(list(settings.values()))
        values = [settings[p].get(key) for p in labels]
        numeric = all(isinstance(v, (int, float)) and v is not None for v in values)
        if numeric:
            x_of = {p: float(settings[p][key]) for p in labels}
        else:
            order = sorted({repr(v): v for v in values}.values(), key=value_order)
            x_of = {p: order.index(settings[p].get(key)) for p in labels}
            ax.set_xticks(range(len(order)), [sweep.format_value(v) for v in order])
        rest = {
            p: sweep.point_label({k: v for k, v in settings[p].items() if k != key}) for p in labels
        }
        series = sorted(set(rest.values()), key=settings_order)
        for m, model in enumerate(models):
            for s, other in enumerate(series):
                mine = [p for p in labels if rest[p] == other]
                for split, style in SPLIT_STYLE.items():
                    rows = g[(g["model"] == model) & (g["split"] == split) & g["point"].isin(mine)]
                    if rows.empty:
                        continue
                    acc = rows.assign(x=rows["point"].map(x_of), acc=100 * rows["accuracy"])
                    means = acc.groupby("x")["acc"].mean().sort_index()
                    ax.plot(
                        means.index,
                        means.values,
                        style,
                        color=f"C{m}",
                        marker=MARKERS[s % len(MARKERS)],
                        markersize=4,
                        alpha=0.9,
                    )
                    ax.scatter(acc["x"], acc["acc"], color=f"C{m}", s=7, alpha=0.45, zorder=3)
                    point = chosen.get((model, variant))
                    if point in mine:
                        ax.scatter(
                            [x_of[point]],
                            [acc[acc["point"] == point]["acc"].mean()],
                            s=120,
                            facecolors="none",
                            edgecolors="black",
                            linewidths=1.4,
                            zorder=4,
                        )
        if numeric:
            if _is_rate(key) and min(values) > 0:
                ax.set_xscale("log")
            ticks = sorted(set(x_of.values()))
            ax.set_xticks(
                ticks, [sweep.format_value(settings[p][key]) for p in _first_at(x_of, ticks)]
            )
            ax.minorticks_off()
        ax.set_title(_wrap(variant, width / ncols, 9), fontsize=9)
        if len(series) > 1:  # the other swept settings, one marker each
            from matplotlib.lines import Line2D

            marks = [
                Line2D([], [], color="gray", marker=MARKERS[s % len(MARKERS)], linestyle="")
                for s in range(len(series))
            ]
            ax.legend(marks, series, fontsize=6, loc="best", framealpha=0.6)
        ax.set_xlabel(key)
        ax.set_ylabel("accuracy (%)")
        ax.set_ylim(*_accuracy_limits(100 * g["accuracy"]))
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(variants) :]:
        ax.axis("off")
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=f"C{m}", label=model) for m, model in enumerate(models)]
    handles += [
        Line2D([], [], color="gray", linestyle=st, label=sp) for sp, st in SPLIT_STYLE.items()
    ]
    handles.append(
        Line2D(
            [],
            [],
            linestyle="",
            marker="o",
            markersize=10,
            markerfacecolor="none",
            markeredgecolor="black",
            label="selected (best mean validation)",
        )
    )
    columns = min(len(handles), 3 if ncols == 1 else 8)
    fig.legend(handles=handles, loc="lower center", ncol=columns, fontsize=8, frameon=False)
    _suptitle(
        fig,
        f"{dataset}: validation and test accuracy (%) over each sweep "
        "(lines: mean over seeds, dots: seeds)",
    )
    legend_rows = math.ceil(len(handles) / columns)
    bottom = 0.04 + 0.045 * legend_rows * 3.3 / fig.get_figheight()
    fig.tight_layout(rect=(0, bottom, 1, 1))
    return _save(fig, path)
