"""Aggregate run metrics into the long table, summary tables (CSV, Markdown, LaTeX) and plots.

    python scripts/aggregate.py --metrics results/runs/*/*/*/seed*/*.metrics.json \\
        --out-dir results/tables --plots-dir results/plots [--references '{"models": {...}, ...}']

Runs missing from the grid the files imply (a seed of one cell, a variant of one model) are
listed on stderr and in ``missing.csv`` (header only when none), or with --require-complete
stop the aggregation before anything is written.
"""

import argparse
import json
import sys

from steering.cli import run


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--metrics", nargs="+", required=True, help="<split>.metrics.json files of runs")
    p.add_argument("--out-dir", default="results/tables")
    p.add_argument("--plots-dir", default="results/plots")
    p.add_argument(
        "--references", default="{}", help='JSON {"models": {key: paper name}, "variants": {...}}'
    )
    p.add_argument("--plot-split", default="test")
    p.add_argument(
        "--require-complete",
        action="store_true",
        help="fail (writing nothing) when runs are missing from the grid; else warn and list "
        "them in <out-dir>/missing.csv",
    )
    p.add_argument("--debug", action="store_true")
    a = p.parse_args()
    from pathlib import Path

    from steering import results
    from steering.io import write_text

    try:
        refs = json.loads(a.references)
    except json.JSONDecodeError as e:
        raise ValueError(f"--references is not valid JSON: {e}") from e
    df = results.long_table(a.metrics)
    missing = results.missing_runs(df)
    if len(missing) and a.require_complete:
        raise ValueError(results.describe_missing(missing) + " (drop --require-complete to warn)")
    if len(missing):
        print(f"warning: {results.describe_missing(missing)}", file=sys.stderr)
    out = Path(a.out_dir)
    write_text(out / "missing.csv", missing.to_csv(index=False))
    write_text(out / "long.csv", df.to_csv(index=False))
    for split in sorted(df["split"].unique()):
        summary = results.summary_table(df, split, refs)
        write_text(out / f"summary_{split}.csv", summary.to_csv(index=False))
        write_text(out / f"summary_{split}.md", results.to_markdown(summary))
        write_text(out / f"summary_{split}.tex", results.to_latex(summary))
    plots = Path(a.plots_dir)
    results.plot_accuracy_by_variant(df, plots / "accuracy_by_variant.png", a.plot_split)
    results.plot_accuracy_vs_share(df, plots / "accuracy_vs_share.png", a.plot_split)
    n_runs = len(df[["model", "dataset", "variant", "seed"]].drop_duplicates())
    print(f"{len(df)} rows from {n_runs} runs -> {out}/long.csv, summary_<split>.*, {plots}/*.png")


if __name__ == "__main__":
    sys.exit(run(main))
