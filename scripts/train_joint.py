"""Joint adaptation: PEFT LoRA + post-block steering trained together (the official joint
script's flags and defaults, PROTOCOL.md section 5), then evaluation.

    python scripts/train_joint.py --model-name M --dataset-name BoolQ [--lora-lr X --adapter-lr Y
        --orthogonal-freq step|epoch|init|N ...] [--objective grpo --num-generations G ...]

Saves LoRA in PEFT's format (<out>/lora/) and the steering adapter in ours (<out>/), at
./<dataset>_model/<model>_<variant>/ or --output-dir; evaluates validation (unless
--test-only) and test after training unless --no-eval. With --objective grpo (ours: the
official joint script trains by supervised fine-tuning only) both parts train with GRPO on the
task's rewards, as scripts/train.py --objective grpo.
"""

import argparse
import sys

from steering.methods import METHODS
from steering.methods.steering import add_steering_arguments, steering_from_args
from steering.runtime.cli import run
from steering.tasks import EXTRA_TASKS, TASKS
from steering.training.flags import (
    SINGLE_BOS_HELP,
    add_batch_flags,
    add_checkpointing_flags,
    add_grpo_flags,
    add_length_grouping_flag,
    add_logits_flag,
    add_precision_flags,
    add_sharding_flag,
    grpo_settings,
    report_training,
    shared_train_settings,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model-name", required=True, help="hub id or local model directory")
    p.add_argument(
        "--dataset-name", required=True, help=f"one of {[*TASKS, *EXTRA_TASKS]} (or ARC)"
    )
    p.add_argument("--lr", type=float, default=2e-4, help="default lr of both parameter groups")
    p.add_argument("--warmup-ratio", type=float, default=0.06)
    p.add_argument("--scheduler", default="cosine", choices=["cosine", "linear"])
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--epochs", type=float, default=None, help="default: the dataset's")
    add_batch_flags(p)
    METHODS["joint"].add_arguments(p)  # --lora-rank, --lora-lr, --adapter-lr, --orthogonal-*
    add_steering_arguments(p, vector=False, official_sites=False, last=False)
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
    add_precision_flags(p)
    add_sharding_flag(p)
    p.add_argument("--eval-batch-size", type=int, default=16)
    p.add_argument("--device")
    p.add_argument("--wandb", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--single-bos", action="store_true", help=SINGLE_BOS_HELP)
    add_length_grouping_flag(p)
    add_logits_flag(p)
    add_checkpointing_flags(p)
    add_grpo_flags(p)
    p.add_argument("--debug", action="store_true")
    return p.parse_args(argv)


def settings_from(argv: list[str] | None = None):
    """The run's TrainSettings from its command line (as scripts/train.py's)."""
    return _settings(parse_args(argv))


def _settings(a: argparse.Namespace):
    from steering.training.run import TrainSettings

    return TrainSettings(
        steering=steering_from_args(a),
        method="joint",
        options=METHODS["joint"].options_from_args(a),
        scheduler=a.scheduler,
        do_eval=not a.no_eval,
        test_only=a.test_only and not a.no_eval,
        **shared_train_settings(a),
    )


def main() -> None:
    a = parse_args()  # first: --help and bad flags import nothing heavy
    grpo, settings = grpo_settings(a), _settings(a)
    if grpo is not None:
        from steering.training.grpo import train_grpo

        report_training(train_grpo(settings, grpo))
        return
    from steering.training.run import train

    report_training(train(settings))


if __name__ == "__main__":
    sys.exit(run(main))
