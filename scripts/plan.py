"""Plan a pipeline grid before submitting it: per model and variant, its jobs, the memory a
training job needs per GPU, the GPUs it asks for, whether that fits, and GPU-hours.

    python scripts/plan.py --configfile config/paper.yaml [--gpu h100|h200|a100 --mfu 0.35
        --startup-s 30 --disk-gbps 2]

The config is checked as the pipeline checks it. Memory: steering/training/memory.py, from each
model's config.json (its directory or the local hub cache, else the shapes the project ships
for the paper's models, steering/loading/public_configs.py: no download needed; another model
neither has, or a tiny one the pipeline builds, shows "-"). GPU-hours: steering/pipeline/budget.py,
from the real data's size and the stated assumptions (printed under the table), with each
job's fixed cost (start-up, model load) in a column of its own and in the total.
"""

import argparse
import copy
import json
import sys
from pathlib import Path

from steering.runtime.cli import run

ROOT = Path(__file__).resolve().parent.parent


def merged(paths: list[str]) -> dict:
    """The config files merged as Snakemake merges them (later keys over earlier ones)."""

    def merge(a: dict, b: dict) -> dict:
        out = dict(a)
        for k, v in b.items():
            out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
        return out

    from steering.pipeline.grid_config import read_yaml

    config: dict = {}
    for path in paths:
        config = merge(config, read_yaml(path))
    return config


def decode_results() -> dict[str, dict]:
    """benchmarks/decode_step.py's GPU results, by file name (none: an empty dict)."""
    found = {}
    for path in sorted((ROOT / "benchmarks" / "results").glob("decode_gpu_*.json")):
        try:
            found[f"benchmarks/results/{path.name}"] = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue  # a broken result file measures nothing
    return found


def main() -> None:
    from steering.pipeline import budget, grid_config
    from steering.training import memory

    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--configfile", nargs="+", default=[str(ROOT / "config/config.yaml")])
    p.add_argument("--gpu", choices=list(budget.GPUS), default="h100")
    p.add_argument("--mfu", type=float, default=budget.Assumptions.mfu)
    p.add_argument(
        "--bandwidth-use",
        type=float,
        help="share of the GPU's memory bandwidth a decoding step achieves (default: measured "
        "by benchmarks/decode_step.py on that GPU where a result exists, else "
        f"{budget.Assumptions.bandwidth_use})",
    )
    p.add_argument(
        "--startup-s",
        type=float,
        default=budget.Assumptions.startup_s,
        help="seconds a job takes to start (interpreter, imports, CUDA context)",
    )
    p.add_argument(
        "--disk-gbps",
        type=float,
        default=budget.Assumptions.disk_gbps,
        help="GB/s at which a job reads the model's weights",
    )
    p.add_argument("--debug", action="store_true")
    a = p.parse_args()
    config = merged(a.configfile)
    written = copy.deepcopy(config)
    try:
        grid_config.check(config, written, files=a.configfile, schema=ROOT / "config/schema.yaml")
    except grid_config.GridConfigError as e:
        raise ValueError(str(e)) from None
    if a.startup_s < 0:
        raise ValueError(f"--startup-s {a.startup_s} must be >= 0 (seconds a job takes to start)")
    if a.disk_gbps <= 0:
        raise ValueError(f"--disk-gbps {a.disk_gbps} must be > 0 (GB/s reading the weights)")
    source = "--bandwidth-use" if a.bandwidth_use is not None else "assumed"
    if a.bandwidth_use is None:
        measured = budget.measured_bandwidth_use(decode_results(), a.gpu)
        a.bandwidth_use, source = measured or (budget.Assumptions.bandwidth_use, "assumed")
    assumptions = budget.Assumptions(
        a.gpu, a.mfu, a.bandwidth_use, startup_s=a.startup_s, disk_gbps=a.disk_gbps
    )
    rows = budget.plan(config, assumptions)
    header = ["model", "variant", "method", "train jobs", "eval jobs", "GiB/GPU", "GPUs"]
    header += ["fits", "fed/real", "GPU-hours", "fixed"]
    table = [header]
    for r in rows:
        table.append(
            [r.model, r.variant, r.method, str(r.train_jobs), str(r.eval_jobs)]
            + ["-" if r.memory is None else f"{r.memory / memory.GIB:.1f}", str(r.gpus)]
            + ["-" if r.fits is None else ("yes" if r.fits else "NO")]
            + ["-" if r.fed_over_real is None else f"{r.fed_over_real:.2f}"]
            + ["-" if r.gpu_hours is None else f"{r.gpu_hours:,.1f}"]
            + ["-" if r.fixed_hours is None else f"{r.fixed_hours:,.1f}"]
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print(
            "  ".join(
                v.ljust(w) if i < 3 else v.rjust(w)
                for i, (v, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    known = [r.gpu_hours for r in rows if r.gpu_hours is not None]
    jobs = sum(r.train_jobs + r.eval_jobs for r in rows)
    spec = assumptions.spec
    print(
        f"\n{jobs:,} training and evaluation jobs; {sum(known):,.0f} GPU-hours on {a.gpu.upper()} "
        f"({spec['memory'] / memory.GIB:.1f} GiB as torch reports it) for the rows with a "
        "known model"
    )
    print(
        f"assumed: {a.mfu:.0%} of the dense peak ({spec['fp32']} fp32 / {spec['tf32']} tf32 / "
        f"{spec['bf16']} bf16 TFLOP/s) in training and prefill, 6 P FLOPs a token for full "
        f"fine-tuning and 4 P for frozen-base methods; decoding at {a.bandwidth_use:.0%} of "
        f"{spec['bandwidth']} TB/s ({source}), one weight read a step; data: each task's "
        "public rows x the tokens a row feeds (steering/tasks: measured length profiles), "
        "padding included where batches are not packed (column 'fed/real', simulated in "
        "steering/pipeline/padding.py); memory: steering/training/memory.py"
    )
    fixed = sum(r.fixed_hours or 0 for r in rows)
    print(
        f"fixed costs (column 'fixed', included in GPU-hours): {a.startup_s:g} s start-up and "
        f"the weights (2 bytes a parameter) read at {a.disk_gbps:g} GB/s, per job and GPU held: "
        f"{fixed:,.0f} GPU-hours; shapes: config.json, else steering/loading/public_configs.py"
    )
    unprofiled = budget.unprofiled(config)
    if unprofiled:
        print(
            f"note: no length profile for {', '.join(unprofiled)}: counted at an estimated mean "
            "of tokens a row, with no padding (steering/tasks)"
        )
    short = [r for r in rows if r.fits is False]
    for r in short:
        print(
            f"warning: {r.model} {r.variant} needs ~{r.memory / memory.GIB:.0f} GiB per GPU on "
            f"{r.gpus} GPU(s); the GPU has {spec['memory'] / memory.GIB:.1f}: the job would be "
            "refused",
            file=sys.stderr,
        )


if __name__ == "__main__":
    sys.exit(run(main))
