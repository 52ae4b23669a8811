"""The report's headline: the run's own test summary and comparisons as reStructuredText.

``scripts/aggregate.py`` writes it to ``results/tables/headline.rst``; the Snakefile reads it
into the config (``_headline``) when it exists, and ``report/workflow.rst`` puts it on the
report's first page, so the numbers a reader sees first are this run's, with their intervals.
"""

from __future__ import annotations

import pandas as pd

from steering.pipeline import comparisons as comparing
from steering.pipeline import results


def _list_table(title: str, header: list[str], body: list[list[str]]) -> list[str]:
    lines = [f".. list-table:: {title}", "   :header-rows: 1", ""]
    for row in [header, *body]:
        lines.append(f"   * - {_escape(row[0])}")
        lines += [f"     - {_escape(cell)}" for cell in row[1:]]
    return lines + [""]


def _escape(text: str) -> str:
    text = str(text) or "-"
    return text.replace("\\", "\\\\").replace("*", "\\*").replace("`", "\\`").replace("|", "\\|")


def render(summary: pd.DataFrame, table: pd.DataFrame, split: str = "test") -> str:
    """The headline of ``summary`` (``results.summary_table`` with intervals, official parser)
    and ``table`` (``comparisons.comparisons``) on ``split``."""
    header, body = results.display(summary, "±")
    lines = [
        f"**Headline** ({split} accuracy, %, mean ± std over seeds [95 % interval: items and "
        "seeds resampled]; chance is guessing on the same rows; the paper's numbers beside the "
        "rows that map to them):",
        "",
        *_list_table(f"summary_{split}", header, body),
    ]
    rows = table[table["split"] == split]
    if len(rows):
        reference = rows["reference"].iloc[0]
        head = ["model", "dataset", "variant", f"diff vs {reference} (95 % CI)", "p", "paper"]
        cells = []
        for r in rows.itertuples():
            paper = "-" if pd.isna(r.paper_diff) else f"{r.paper_diff:+.1f}"
            diff = comparing.format_diff(r.diff, r.ci_low, r.ci_high)
            cells.append(
                [r.model, r.dataset, r.variant, diff, comparing.format_p(r.p_value), paper]
            )
        lines += [
            f"**Differences** to ``{reference}`` on the same {split} items (points; paired "
            "bootstrap interval, paired permutation p; comparisons.md has both parsers):",
            "",
            *_list_table(f"comparisons ({split})", head, cells),
        ]
    return "\n".join(lines) + "\n"
