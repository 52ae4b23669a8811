"""Evaluate a checkpoint of any method (or the base model) with lm-evaluation-harness tasks,
the pipeline's lm-eval job (steering/lm_eval/; the optional extra lm_eval).

    python scripts/lm_eval_run.py --model-name results/models/tiny-llama \\
        --checkpoint results/runs/tiny-llama/BoolQ/silu/seed0/checkpoint \\
        --tasks arc_easy hellaswag --limit 200 --output results/lm_eval/run.json

Writes lm-eval's results (per task and metric, with its config and versions) and ours under
config.steering (method, checkpoint, base model, trainable parameters, commit) as one JSON
file. --select takes the validation metrics of every point and seed of a swept variant and
evaluates the checkpoint of the point the selection chooses (for --seed).
"""

import argparse
import sys

from steering.loading.loader import DEVICE_MAPS
from steering.runtime.cli import run
from steering.training.flags import add_precision_flags


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model-name", required=True, help="the base model: hub id or directory")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--checkpoint", help="a checkpoint directory (default: the base model)")
    which.add_argument(
        "--select",
        nargs="+",
        metavar="METRICS",
        help="validation.metrics.json of every point and seed of one variant: evaluate the "
        "point chosen on validation",
    )
    p.add_argument("--seed", type=int, default=0, help="with --select: the seed's checkpoint")
    p.add_argument("--tasks", nargs="+", required=True, help="lm-eval task names")
    p.add_argument("--include-path", help="a directory of task YAMLs (tasks over local files)")
    p.add_argument("--limit", type=int, help="documents per task (default: all)")
    p.add_argument("--num-fewshot", type=int, help="default: each task's own")
    p.add_argument("--batch-size", type=int, default=16)
    add_precision_flags(p)
    p.add_argument("--device", help="cuda, cpu, ... (default: CUDA if present)")
    p.add_argument("--device-map", choices=list(DEVICE_MAPS), help="spread over all GPUs")
    p.add_argument("--output", required=True, help="the results file (JSON)")
    p.add_argument("--debug", action="store_true", help="show tracebacks of expected errors")
    return p.parse_args()


def main() -> None:
    a = parse_args()
    from pathlib import Path

    from steering.lm_eval import evaluation, require
    from steering.runtime.precision import resolve
    from steering.runtime.storage import probe

    if Path(a.output).is_dir():
        raise ValueError(f"--output {a.output} is a directory; give a file path")
    probe(Path(a.output).parent, what="--output")  # read-only or full: stop before loading
    require()
    if a.batch_size < 1 or (a.limit is not None and a.limit < 1):
        raise ValueError("--batch-size and --limit must be >= 1")
    checkpoint, chosen = a.checkpoint, None
    if a.select:
        checkpoint, chosen = evaluation.chosen_checkpoint(a.select, a.seed)
    results = evaluation.evaluate(
        a.model_name,
        a.tasks,
        checkpoint=checkpoint,
        include_path=a.include_path,
        limit=a.limit,
        num_fewshot=a.num_fewshot,
        batch_size=a.batch_size,
        precision=resolve(a.precision, a.dtype),
        device=a.device,
        device_map=a.device_map,
    )
    results["selected"] = chosen
    evaluation.write(results, a.output)
    for task, metrics in sorted(results["results"].items()):
        shown = ", ".join(
            f"{k.split(',')[0]} {v:.4f}"
            for k, v in metrics.items()
            if "," in k and "_stderr" not in k and isinstance(v, float)
        )
        print(f"{task}: {shown}")
    print(f"wrote {a.output}" + (f" (selected {chosen})" if chosen else ""))


if __name__ == "__main__":
    sys.exit(run(main, output_flag="--output"))
