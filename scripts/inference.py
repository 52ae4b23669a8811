"""Evaluate a steering checkpoint (ours or the official code's) on a task split.

    python scripts/inference.py --model-name meta-llama/Meta-Llama-3-8B --dataset-name ListOps \\
        --ckpt-path ListOps_model/Meta-Llama-3-8B_adapter_all_nonlinear_silu --split test

Writes <ckpt dir>/<split>.json (JSON Lines: prompt, output, label, eval) and
<split>.metrics.json beside it, or --output-file. Without --ckpt-path, evaluates the base model.
"""

import argparse
import sys

from steering.config import ACTIVATIONS
from steering.loading.loader import DEVICE_MAPS
from steering.runtime.cli import run
from steering.tasks import EXTRA_TASKS, TASKS
from steering.training.flags import SINGLE_BOS_HELP, add_precision_flags


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model-name", required=True, help="hub id or local model directory")
    p.add_argument(
        "--dataset-name", required=True, help=f"one of {[*TASKS, *EXTRA_TASKS]} (or ARC)"
    )
    p.add_argument("--ckpt-path", help="checkpoint directory, or an official pytorch_model.bin")
    p.add_argument(
        "--split",
        nargs="+",
        default=["test"],
        choices=["train", "validation", "test"],
        help="one or more splits (the model loads once)",
    )
    p.add_argument(
        "--output-file", help="records file (JSON Lines) for one split; metrics beside it"
    )
    p.add_argument("--output-dir", help="write <output-dir>/<split>.json for each split")
    # must match the checkpoint when given (ours record them; official ones are read from keys)
    p.add_argument("--no-adapter", action="store_true", default=None)
    p.add_argument("--adapter-rank", type=int, default=None)
    p.add_argument("--submodules", action="store_true", default=None)
    p.add_argument("--intervene-last", action="store_true", default=None)
    # official checkpoints do not record their activation
    p.add_argument(
        "--linear", action="store_true", help="official checkpoint trained with --linear"
    )
    p.add_argument("--nonlinearity", default="silu", choices=[a for a in ACTIVATIONS if a])
    p.add_argument("--data-dir", help="local data: prepared splits or source-split files")
    p.add_argument("--max-eval-samples", type=int)
    p.add_argument("--eval-batch-size", type=int, default=16)
    add_precision_flags(p)
    p.add_argument("--device", help="cuda, cpu, ... (default: CUDA if present)")
    p.add_argument(
        "--device-map",
        choices=list(DEVICE_MAPS),
        help="spread a large model over all visible GPUs (accelerate), instead of --device",
    )
    p.add_argument(
        "--offload-folder",
        help="with --device-map: a directory for the layers that fit neither GPU nor CPU, "
        "when their weights must be written out first (a .bin checkpoint; safetensors ones "
        "are read in place)",
    )
    p.add_argument("--seed", type=int, default=42, help="recorded in the provenance")
    p.add_argument("--single-bos", action="store_true", help=SINGLE_BOS_HELP)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--debug", action="store_true", help="show tracebacks of expected errors")
    return p.parse_args()


def main() -> None:
    a = parse_args()
    from steering.evaluation.inference import InferenceSettings, run_inference
    from steering.runtime.precision import resolve

    results = run_inference(
        InferenceSettings(
            model_name=a.model_name,
            dataset_name=a.dataset_name,
            ckpt_path=a.ckpt_path,
            splits=a.split,
            output_dir=a.output_dir,
            output_file=a.output_file,
            no_adapter=a.no_adapter,
            adapter_rank=a.adapter_rank,
            submodules=a.submodules,
            intervene_last=a.intervene_last,
            activation=None if a.linear else a.nonlinearity,
            data_dir=a.data_dir,
            max_eval_samples=a.max_eval_samples,
            eval_batch_size=a.eval_batch_size,
            precision=resolve(a.precision, a.dtype),
            device=a.device,
            device_map=a.device_map,
            offload_folder=a.offload_folder,
            seed=a.seed,
            progress=not a.no_progress,
            single_bos=a.single_bos,
        )
    )
    for r in results:
        print(f"{r['split']}: accuracy {r['accuracy']:.4f} (n={r['n']}, {r['tokens_per_s']} tok/s)")


if __name__ == "__main__":
    sys.exit(run(main))
