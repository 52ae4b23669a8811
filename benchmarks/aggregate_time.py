"""Benchmark: seconds to aggregate the paper's grid, intervals and comparisons included.

    python benchmarks/aggregate_time.py [--configfile config/paper.yaml --repeats 1]

Writes a result tree of the grid's size into a temporary directory: every metrics file the
grid's jobs produce (``steering.pipeline.jobs.metrics_files``: each run's validation and test
split), each with per-item verdicts over the test or validation size of its dataset's public
data (``Task.public_rows``) and a ``training.json`` for trained runs, the accuracies drawn
around a level per variant so that selections and comparisons have something to find. Then
times ``scripts/aggregate.py`` on it, end to end in a fresh interpreter (reading the files,
selection, summaries with their intervals, comparisons at 10,000 resamples, stability,
every table and plot), best of ``--repeats``. Target: under 60 s on the 2-core CPU.
Writes benchmarks/results/aggregate_time.json.
"""

import argparse
import copy
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness
import numpy as np

from steering.pipeline import grid_config, jobs
from steering.runtime.provenance import items_digest
from steering.tasks import get_task

ROOT = Path(__file__).resolve().parent.parent


def write_tree(config: dict, root: Path, seed: int = 0) -> int:
    """The grid's metrics files under ``root``; returns how many."""
    rng = np.random.default_rng(seed)
    grid = jobs.grid(config)
    levels = {v.split("@")[0]: rng.uniform(0.3, 0.8) for v in grid["variants"]}
    digests = {}
    paths = jobs.metrics_files(grid)
    for path in paths:
        parts = Path(path).parts  # results/runs/model/dataset/run/seedN/split.metrics.json
        dataset, run, split = parts[3], parts[4], parts[6].split(".")[0]
        n = max(1, get_task(dataset).public_rows.get(split, 500))
        if (dataset, split) not in digests:
            records = [{"prompt": f"{dataset} {split} {i}", "label": "A"} for i in range(n)]
            digests[dataset, split] = items_digest(records)
        bits = rng.random(n) < levels[run.split("@")[0]]
        text = "".join("1" if b else "0" for b in bits)
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        metrics = {
            "accuracy": float(bits.mean()),
            "accuracy_strict": float(bits.mean()),
            "n": n,
            "chance": 0.25,
            "correct_items": text,
            "correct_items_strict": text,
            "items_sha256": digests[dataset, split],
            "provenance": {"protocol_version": 1, "git_commit": "bench"},
        }
        target.write_text(json.dumps(metrics))
        if jobs.is_trained(grid, run):
            checkpoint = target.parent / "checkpoint"
            checkpoint.mkdir(exist_ok=True)
            training = {"trainable_parameters": 1000, "trainable_share": 0.001}
            (checkpoint / "training.json").write_text(json.dumps({**training, "objective": "sft"}))
    return len(paths)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--configfile", default="config/paper.yaml")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--out", default=None, help="default: results/aggregate_time.json")
    a = p.parse_args()
    config = grid_config.read_yaml(ROOT / a.configfile)
    grid_config.check(config, copy.deepcopy(config), schema=ROOT / "config/schema.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        files = write_tree(config, root)
        written_s = time.perf_counter() - start
        metrics = sorted(str(p.relative_to(root)) for p in root.rglob("*.metrics.json"))
        (root / "metrics.txt").write_text("\n".join(metrics))
        cmd = [
            sys.executable,
            "-c",
            "import runpy, sys; "
            "sys.argv = ['aggregate.py', '--metrics', *open('metrics.txt').read().split(), "
            f"*sys.argv[1:]]; runpy.run_path({str(ROOT / 'scripts/aggregate.py')!r}, "
            "run_name='__main__')",
            "--out-dir",
            "tables",
            "--plots-dir",
            "plots",
            "--references",
            jobs.references(config),
        ]
        times = []
        for _ in range(a.repeats):
            start = time.perf_counter()
            done = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
            times.append(time.perf_counter() - start)
            if done.returncode != 0:
                raise SystemExit(f"aggregate.py failed:\n{done.stderr[-3000:]}")
        compared = (root / "tables" / "comparisons.csv").read_text().count("\n") - 1
    rows = [
        {
            "metrics_files": files,
            "runs": files // len(config.get("splits", ["validation", "test"])),
            "comparisons": compared,
            "aggregate_s": round(min(times), 2),
            "tree_written_s": round(written_s, 2),
        }
    ]
    harness.print_table(rows, list(rows[0]))
    harness.write_result(
        Path(a.out) if a.out else harness.RESULTS / "aggregate_time.json",
        "seconds for scripts/aggregate.py over the paper grid's metrics files, intervals, "
        "comparisons (10,000 resamples) and selection stability included",
        {k: v for k, v in vars(a).items() if k != "out"},
        rows,
        times_s=times,
    )


if __name__ == "__main__":
    main()
