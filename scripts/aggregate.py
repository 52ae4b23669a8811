"""Aggregate run metrics into the long table, the selection over sweep points, summary
tables (CSV, Markdown, LaTeX) and plots.

    python scripts/aggregate.py --metrics results/runs/*/*/*/seed*/*.metrics.json \\
        --out-dir results/tables --plots-dir results/plots [--references '{"models": {...}, ...}']

For each (model, dataset, variant) the sweep point with the best mean validation accuracy
over seeds is selected (selection.csv/.md); the summaries show its test (and validation)
accuracy under the official parser (summary_<split>.*, with the paper's numbers) and the
strict one (summary_<split>_strict.*), each cell with its 95 % interval (items and seeds
resampled); comparisons.csv/.md pair every variant with the reference (--compare-to) on the
same items (paired bootstrap interval, paired permutation p-value), plots/comparisons_<dataset>
.png draws them, and headline.rst is the report's first page; selection.csv adds the selected
point's test interval and its stability under resampled validation items. sweep_<split>.csv
and the long table keep every
point, plots/sweep_<dataset>.png draws the curves. Runs trained with GRPO are marked in the
summaries; their reward per step goes to rewards.csv and plots/rewards.png. Runs missing from
the grid the files imply (a seed of one cell, a point or a variant of one model) are listed on
stderr and in ``missing.csv`` (header only when none), or with --require-complete stop the
aggregation before anything is written; a point that lacks validation for a seed is named
and left out of the selection.
"""

import argparse
import json
import sys

from steering.runtime.cli import run


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
        "--compare-to",
        help="the reference variant of comparisons.csv (default: lora, else full, else base)",
    )
    p.add_argument(
        "--resamples",
        type=int,
        default=10_000,
        help="bootstrap resamples and permutations of the intervals and tests (default 10,000)",
    )
    p.add_argument("--bootstrap-seed", type=int, default=0, help="their random seed (default 0)")
    p.add_argument(
        "--require-complete",
        action="store_true",
        help="fail (writing nothing) when runs are missing from the grid; else warn and list "
        "them in <out-dir>/missing.csv",
    )
    p.add_argument("--debug", action="store_true")
    a = p.parse_args()
    from pathlib import Path

    from steering.pipeline import (
        comparisons,
        forest,
        headline,
        intervals,
        items,
        plots,
        results,
        selection,
    )
    from steering.runtime.io import write_text
    from steering.runtime.storage import probe

    for flag, where in (("--out-dir", a.out_dir), ("--plots-dir", a.plots_dir)):
        probe(where, what=flag)  # read-only or full: stop before reading the runs

    try:
        refs = json.loads(a.references)
    except json.JSONDecodeError as e:
        raise ValueError(f"--references is not valid JSON: {e}") from e
    if a.resamples < 100:
        raise ValueError(f"--resamples must be at least 100, got {a.resamples}")
    df = results.long_table(a.metrics)
    missing = results.missing_runs(df)
    if len(missing) and a.require_complete:
        raise ValueError(results.describe_missing(missing) + " (drop --require-complete to warn)")
    if len(missing):
        print(f"warning: {results.describe_missing(missing)}", file=sys.stderr)
    chosen = selection.select(df)
    for problem in chosen.warnings():
        print(f"warning: {problem}", file=sys.stderr)
    best = selection.selected_rows(df, chosen.table)
    verdicts, lacking = items.read_all(a.metrics)
    if lacking:
        print(
            f"warning: {len(lacking)} metrics files have no per-item verdicts (evaluated before "
            f"they were recorded, records gone; e.g. {lacking[0]}): their cells get no interval "
            "and no comparison; re-run their evaluation for both",
            file=sys.stderr,
        )
    resampler = intervals.Resampler(a.resamples, a.bootstrap_seed)
    if a.compare_to and a.compare_to not in set(df["variant"]):
        raise ValueError(
            f"--compare-to {a.compare_to!r} is not a variant of these runs; valid names: "
            f"{sorted(df['variant'].unique())}"
        )
    found = comparisons.uncertainty(df, best, chosen.table, verdicts, a.compare_to, resampler, refs)
    compared, left_out, picked = found.comparisons, found.warnings, found.selection
    for problem in left_out:
        print(f"warning: {problem}", file=sys.stderr)
    chosen.table = picked
    out = Path(a.out_dir)
    write_text(out / "missing.csv", missing.to_csv(index=False))
    write_text(out / "long.csv", df.to_csv(index=False))
    write_text(out / "selection.csv", picked.to_csv(index=False))
    write_text(out / "selection.md", selection.selection_markdown(chosen))
    write_text(out / "comparisons.csv", compared.to_csv(index=False))
    write_text(out / "comparisons.md", comparisons.to_markdown(compared, left_out))
    note = selection.selection_note(chosen.table)
    summaries = {}
    for split in sorted(df["split"].unique()):
        # official parser (paper-comparable, with the paper's numbers) and strict parser
        for name, metric, paper in (
            (f"summary_{split}", "accuracy", refs),
            (f"summary_{split}_strict", "accuracy_strict", {}),
        ):
            summary = results.summary_table(best, split, paper, metric=metric)
            summary = comparisons.with_intervals(summary, found.cells, split, metric)
            summaries[name] = summary
            write_text(out / f"{name}.csv", summary.to_csv(index=False))
            write_text(out / f"{name}.md", results.to_markdown(summary) + note)
            write_text(out / f"{name}.tex", results.to_latex(summary))
        sweep = selection.sweep_table(df, split, chosen.table)
        write_text(out / f"sweep_{split}.csv", sweep.to_csv(index=False))
    curves = results.reward_curves(a.metrics)
    write_text(out / "rewards.csv", curves.to_csv(index=False))
    figures = Path(a.plots_dir)
    plots.plot_rewards(curves, figures / "rewards.png")
    plots.plot_accuracy_by_variant(
        best,
        figures / "accuracy_by_variant.png",
        a.plot_split,
        summaries.get(f"summary_{a.plot_split}"),
    )
    headline_split = "test" if "summary_test" in summaries else a.plot_split
    write_text(
        out / "headline.rst",
        headline.render(summaries[f"summary_{headline_split}"], compared, headline_split),
    )
    plots.plot_accuracy_vs_share(best, figures / "accuracy_vs_share.png", a.plot_split)
    for dataset in sorted(df["dataset"].unique()):
        plots.plot_sweep(df, chosen.table, dataset, figures / f"sweep_{dataset}.png")
        forest.plot_forest(compared, dataset, figures / f"comparisons_{dataset}.png")
    n_runs = len(df[["model", "dataset", "variant", "point", "seed"]].drop_duplicates())
    swept = chosen.table[chosen.table["points"] > 1]
    print(
        f"{len(df)} rows from {n_runs} runs -> {out}/long.csv, selection.*, summary_<split>.*, "
        f"summary_<split>_strict.*, comparisons.*, headline.rst, sweep_<split>.csv, "
        f"rewards.csv, {figures}/*.png"
    )
    for r in swept.itertuples():
        print(
            f"selected {r.model}/{r.dataset}/{r.variant}: {r.point} of {r.points} points "
            f"(validation {r.val_mean:.1f}, test {r.test_mean:.1f})"
        )


if __name__ == "__main__":
    sys.exit(run(main, output_flag="--out-dir"))
