"""The forest plot of the comparisons (no torch; matplotlib, Agg, written atomically).

``plot_forest``: for one dataset, a row per (model, variant, split) of comparisons.csv
(``steering/pipeline/comparisons.py``): the difference to the reference variant in points as
a dot with its 95 % paired interval as a horizontal bar, a line at zero (no difference), and
the paper's difference as a cross where PROTOCOL.md's tables give both numbers. A row whose
interval excludes zero is drawn filled, one that includes it hollow.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from steering.pipeline.plots import _pyplot, _save, _suptitle

SPLIT_COLOUR = {"test": "C0", "validation": "C1"}


def plot_forest(table: pd.DataFrame, dataset: str, path: str | Path):
    """The forest plot of ``dataset``'s rows of ``table`` (an empty figure saying so when the
    dataset has none: a run without a reference variant)."""
    plt = _pyplot()
    from matplotlib.lines import Line2D

    rows = table[table["dataset"] == dataset].sort_values(["model", "variant", "split"])
    fig, ax = plt.subplots(figsize=(7.2, 1.9 + 0.32 * max(1, len(rows))))
    labels = []
    for y, r in enumerate(rows.itertuples()):
        colour = SPLIT_COLOUR.get(r.split, "C2")
        excludes_zero = r.ci_low > 0 or r.ci_high < 0
        ax.plot([r.ci_low, r.ci_high], [y, y], color=colour, lw=1.5)
        ax.plot(r.diff, y, "o", color=colour, mfc=colour if excludes_zero else "white", zorder=3)
        if r.paper_diff is not None and not pd.isna(r.paper_diff):
            ax.plot(r.paper_diff, y, "x", color="black", zorder=4)
        labels.append(f"{r.model} {r.variant} ({r.split})")
    ax.axvline(0, color="gray", lw=0.8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("difference to the reference (points)", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    if not len(rows):
        ax.text(0.5, 0.5, "no comparison for this dataset", ha="center", transform=ax.transAxes)
    reference = rows["reference"].iloc[0] if len(rows) else "-"
    handles = [
        Line2D([], [], color=c, marker="o", lw=1.5, label=s) for s, c in SPLIT_COLOUR.items()
    ]
    handles.append(Line2D([], [], color="black", marker="x", lw=0, label="paper"))
    # under the axes, where it covers no interval
    ax.legend(handles=handles, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.34), ncol=3)
    _suptitle(
        fig,
        f"{dataset}: each variant minus {reference}, 95 % paired-bootstrap interval "
        "(filled: excludes zero)",
    )
    fig.tight_layout()
    return _save(fig, path)
