"""The pipeline's lm-eval results as tables: every job's tasks and metrics in one long table,
and the retention of each method (its mean over seeds minus the base model) per task.

    python scripts/lm_eval_tables.py --results results/lm_eval/*/base.json \\
        results/lm_eval/*/*/*/seed*.json --out-dir results/tables

Writes <out-dir>/lm_eval.csv, lm_eval_retention.csv and lm_eval_retention.md
(steering/lm_eval/tables.py).
"""

import argparse
import sys

from steering.runtime.cli import run


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--results", nargs="+", required=True, help="the lm-eval jobs' JSON files")
    p.add_argument("--out-dir", default="results/tables")
    p.add_argument("--debug", action="store_true")
    a = p.parse_args()
    from pathlib import Path

    from steering.lm_eval import tables
    from steering.runtime.io import write_text
    from steering.runtime.storage import probe

    probe(a.out_dir, what="--out-dir")
    long = tables.long_table(a.results)
    kept = tables.retention(long)
    out = Path(a.out_dir)
    write_text(out / "lm_eval.csv", long.to_csv(index=False))
    write_text(out / "lm_eval_retention.csv", kept.to_csv(index=False))
    write_text(out / "lm_eval_retention.md", tables.to_markdown(kept))
    print(f"{len(long)} rows from {len(a.results)} lm-eval results -> {out}/lm_eval*.csv, .md")


if __name__ == "__main__":
    sys.exit(run(main, output_flag="--out-dir"))
