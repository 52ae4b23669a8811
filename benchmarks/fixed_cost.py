"""Benchmark: what a pipeline job pays before and after its useful work (its fixed cost).

    python benchmarks/fixed_cost.py [--model .cache/models/smollm2-135m --dataset ARC_Challenge
        --data-dir data/ARC_Challenge --rows 16 --repeats 3]

Each stage runs in a fresh interpreter, as a Snakemake job does; the median of ``--repeats``:
- interpreter: ``python -c pass``;
- help: ``scripts/train.py --help`` and ``scripts/aggregate.py --help`` (start-up and argument
  parsing: what a mistyped flag or a config check costs; no torch since the lazy imports);
- imports: ``import steering.training.run`` / ``steering.evaluation.inference`` (what a job imports
  before its first step: torch, transformers, datasets, the Trainer);
- model load: imports plus ``load_base_model(--model)`` (reading the weights);
- train job: ``scripts/train.py`` on ``--rows`` rows, whole; its fixed cost is the job's wall
  time less the Trainer's own ``train_runtime`` (from training.json).
Writes benchmarks/results/fixed_cost_<cpu|gpu>_<model>.json.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness

ROOT = Path(__file__).resolve().parent.parent


def timed(argv: list[str], env: dict) -> float:
    """Wall seconds of ``argv`` run from the repository root (it must succeed)."""
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stderr[-2000:]}")
    return seconds


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", default=".cache/models/smollm2-135m", help="model directory")
    p.add_argument("--dataset", default="ARC_Challenge")
    p.add_argument("--data-dir", default=None, help="default: data/<dataset>")
    p.add_argument("--rows", type=int, default=16, help="training rows of the whole train job")
    harness.add_common_arguments(p, repeats=3)
    a = p.parse_args()
    if not Path(a.model, "config.json").is_file():
        raise SystemExit(
            f"error: {a.model} is not a model directory; convert the real model first "
            "(python scripts/convert_gguf.py, docs/models.md) or pass --model DIR"
        )
    data_dir = a.data_dir or f"data/{a.dataset}"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    if a.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    py = sys.executable
    load = (
        "from steering.loading.loader import load_base_model; "
        f"load_base_model({a.model!r}, 'float32', {a.device!r})"
    )
    stages = {
        "interpreter": [py, "-c", "pass"],
        "train.py --help": [py, "scripts/train.py", "--help"],
        "aggregate.py --help": [py, "scripts/aggregate.py", "--help"],
        "imports of a training job": [py, "-c", "import steering.training.run"],
        "imports of an evaluation job": [py, "-c", "import steering.evaluation.inference"],
        "imports + model load": [py, "-c", f"import steering.training.run; {load}"],
    }
    rows = []
    for stage, argv in stages.items():
        times = [timed(argv, env) for _ in range(a.repeats)]
        rows.append({"stage": stage, "median_s": round(statistics.median(times), 3)})
    with tempfile.TemporaryDirectory() as tmp:
        job = [py, "scripts/train.py", "--model-name", a.model, "--dataset-name", a.dataset]
        job += ["--data-dir", data_dir, "--max-train-samples", str(a.rows), "--no-progress"]
        walls, fixed = [], []
        for i in range(a.repeats):
            out = Path(tmp) / f"run{i}"
            walls.append(timed([*job, "--output-dir", str(out)], env))
            summary = json.loads((out / "training.json").read_text())
            fixed.append(walls[-1] - summary["train_runtime_s"])
    rows.append(
        {
            "stage": f"train job ({a.rows} rows), whole",
            "median_s": round(statistics.median(walls), 3),
        }
    )
    rows.append(
        {
            "stage": "train job: wall less train_runtime",
            "median_s": round(statistics.median(fixed), 3),
        }
    )
    harness.print_table(rows, ["stage", "median_s"])
    harness.write_result(
        harness.result_path(a.out, "fixed_cost", a.device, Path(a.model).name),
        "the fixed cost of a pipeline job: interpreter start, imports, model load, and a whole "
        "small training job less its training time",
        {k: v for k, v in vars(a).items() if k != "out"},
        rows,
    )


if __name__ == "__main__":
    main()
