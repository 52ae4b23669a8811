"""Benchmark: seconds for ``snakemake -n`` to plan the paper's grid (target under 10 s).

    python benchmarks/dry_run.py [--configfile config/paper.yaml --repeats 3]

Plans the whole grid in an empty working directory (so nothing already computed shortens the
plan), best of ``--repeats``, and counts the jobs from Snakemake's job table. Beside it, in the
same run, ``snakemake --version`` (interpreter and Snakemake start-up alone), so the ratio says
how much of the time is ours (config checks, the DAG) rather than start-up.
Writes benchmarks/results/dry_run.json.
"""

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness

ROOT = Path(__file__).resolve().parent.parent


def timed(cmd: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return wall, done.stdout + done.stderr


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--configfile", default="config/paper.yaml")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=None, help="result JSON (default: results/dry_run.json)")
    a = p.parse_args()
    snakemake = [sys.executable, "-m", "snakemake"]
    best = {"dry_run": float("inf"), "startup": float("inf")}
    with tempfile.TemporaryDirectory(prefix="dry-run-") as workdir:
        plan = [
            *snakemake,
            "-n",
            "--cores",
            "1",
            "--snakefile",
            str(ROOT / "Snakefile"),
            "--configfile",
            str(ROOT / a.configfile),
            "--directory",
            workdir,
        ]
        for _ in range(a.repeats):
            wall, log = timed(plan)
            best["dry_run"] = min(best["dry_run"], wall)
            best["startup"] = min(best["startup"], timed([*snakemake, "--version"])[0])
    found = re.search(r"^total\s+(\d+)\s*$", log, re.MULTILINE)
    if not found:
        raise SystemExit(f"no job total in the dry run's output:\n{log[-2000:]}")
    row = {
        "configfile": a.configfile,
        "jobs": int(found.group(1)),
        "dry_run_s": round(best["dry_run"], 2),
        "startup_s": round(best["startup"], 2),
        "dry_run_over_startup": round(best["dry_run"] / best["startup"], 2),
    }
    harness.print_table([row], list(row))
    print(f"snakemake -n: {row['dry_run_s']} s for {row['jobs']} jobs (target < 10 s)")
    harness.write_result(
        a.out or harness.RESULTS / "dry_run.json",
        "snakemake -n of the paper grid: seconds",
        {k: v for k, v in vars(a).items() if k != "out"},
        [row],
        target_s=10,
        met=best["dry_run"] < 10,
    )


if __name__ == "__main__":
    main()
