"""Joint adaptation: PEFT LoRA + post-block steering trained together (the official joint
script's flags and defaults, PROTOCOL.md section 5), then evaluation.

    python scripts/train_joint.py --model-name M --dataset-name BoolQ [--lora-lr X --adapter-lr Y
        --orthogonal-freq step|epoch|init|N ...]

Saves LoRA in PEFT's format (<out>/lora/) and the steering adapter in ours (<out>/), at
./<dataset>_model/<model>_<variant>/ or --output-dir; evaluates validation (unless
--test-only) and test after training unless --no-eval.
"""

import argparse
import sys

from steering.adapters import ACTIVATIONS
from steering.cli import (
    SINGLE_BOS_HELP,
    add_checkpointing_flags,
    report_training,
    run,
    shared_train_settings,
)
from steering.config import SteeringConfig
from steering.loader import DTYPES
from steering.tasks import TASKS


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model-name", required=True, help="hub id or local model directory")
    p.add_argument("--dataset-name", required=True, help=f"one of {list(TASKS)} (or ARC)")
    p.add_argument("--lr", type=float, default=2e-4, help="default lr of both parameter groups")
    p.add_argument("--lora-lr", type=float, help="the LoRA parameters' lr (default: --lr)")
    p.add_argument("--adapter-lr", type=float, help="the steering adapters' lr (default: --lr)")
    p.add_argument("--warmup-ratio", type=float, default=0.06)
    p.add_argument("--scheduler", default="cosine", choices=["cosine", "linear"])
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--epochs", type=float, default=None, help="default: the dataset's")
    p.add_argument("--bs", type=int, default=8, help="per-device batch (accumulation 2)")
    p.add_argument("--lora-rank", type=int, default=8, help="LoRA r (alpha = r, dropout 0)")
    p.add_argument("--adapter-rank", type=int, default=8)
    p.add_argument("--linear", action="store_true")
    p.add_argument("--nonlinearity", default="silu", choices=[a for a in ACTIVATIONS if a])
    p.add_argument("--submodules", action="store_true")
    p.add_argument(
        "--orthogonal-freq", default="step", help="step | epoch | init | N optimizer steps"
    )
    p.add_argument(
        "--orthogonal-side",
        default="input",
        choices=["input", "output"],
        help="project the adapter's W_down (official) or W_up",
    )
    p.add_argument(
        "--save-model",
        action="store_true",
        help="accepted for the official interface; the checkpoint is always saved",
    )
    p.add_argument("--test-only", action="store_true", help="evaluate the test split only")
    p.add_argument("--no-eval", action="store_true", help="train and save, evaluate later")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--output-dir")
    p.add_argument("--train-log")
    p.add_argument("--data-dir")
    p.add_argument("--max-train-samples", type=int)
    p.add_argument("--max-eval-samples", type=int)
    p.add_argument("--dtype", default="float32", choices=list(DTYPES))
    p.add_argument("--eval-batch-size", type=int, default=16)
    p.add_argument("--device")
    p.add_argument("--wandb", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--single-bos", action="store_true", help=SINGLE_BOS_HELP)
    add_checkpointing_flags(p)
    p.add_argument("--debug", action="store_true")
    return p.parse_args()


def main() -> None:
    a = parse_args()
    from steering.training import TrainSettings, train

    steering = SteeringConfig(
        rank=a.adapter_rank,
        activation=None if a.linear else a.nonlinearity,
        sites=("attn", "mlp") if a.submodules else ("block",),
    )
    summary = train(
        TrainSettings(
            steering=steering,
            method="joint",
            lora_rank=a.lora_rank,
            lora_lr=a.lora_lr,
            adapter_lr=a.adapter_lr,
            scheduler=a.scheduler,
            orthogonal_freq=a.orthogonal_freq,
            orthogonal_side=a.orthogonal_side,
            do_eval=not a.no_eval,
            test_only=a.test_only and not a.no_eval,
            **shared_train_settings(a),
        )
    )
    report_training(summary)


if __name__ == "__main__":
    sys.exit(run(main))
