"""Train post-block steering on a task (the official train script's flags, plus ours).

    python scripts/train.py --model-name meta-llama/Meta-Llama-3-8B --dataset-name ListOps

Saves the adapter to ./<dataset>_model/<model>_<variant>/ (or --output-dir); with --do-eval
also evaluates validation (unless --test-only) and test, writing outputs/... (or --output-dir).
"""

import argparse
import sys

from steering.methods import METHODS, training_methods
from steering.methods.steering import steering_from_args
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
        "--dataset-name",
        required=True,
        help=f"one of {list(TASKS)} (or ARC), the official command line's {list(EXTRA_TASKS)}, "
        "or GSM8K-GRPO (GSM8K under GRPO)",
    )
    p.add_argument("--lr", type=float, default=9e-4)
    p.add_argument("--warmup-ratio", type=float, default=0.03)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument(
        "--epochs",
        type=float,
        default=None,
        help="default: the dataset's (GSM8K and MAWPS 3, others 1)",
    )
    add_batch_flags(p)
    p.add_argument(
        "--method",
        default="steering",
        choices=training_methods(),
        help="steering (default), or another method of steering.methods: "
        + "; ".join(f"{n}: {METHODS[n].summary}" for n in training_methods()),
    )
    for name in training_methods():  # each method's flags (steering's: the official ones)
        METHODS[name].add_arguments(p)
    p.add_argument("--do-eval", action="store_true", help="evaluate after training")
    p.add_argument("--test-only", action="store_true", help="with --do-eval: skip validation")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--output-dir", help="where the checkpoint (and evaluation outputs) go")
    p.add_argument(
        "--train-log", help="JSON Lines of the training logs (default: in the checkpoint)"
    )
    p.add_argument("--data-dir", help="local data: prepared splits or source-split files")
    p.add_argument("--max-train-samples", type=int)
    p.add_argument("--max-eval-samples", type=int)
    add_precision_flags(p)
    add_sharding_flag(p)
    p.add_argument("--eval-batch-size", type=int, default=16)
    p.add_argument("--device", help="cuda, cuda:1, cpu, ... (default: CUDA if present)")
    p.add_argument(
        "--wandb", action="store_true", help="log to Weights & Biases (WANDB_MODE=offline works)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--single-bos", action="store_true", help=SINGLE_BOS_HELP)
    add_length_grouping_flag(p)
    add_logits_flag(p)
    add_checkpointing_flags(p)
    add_grpo_flags(p)
    p.add_argument("--debug", action="store_true", help="show tracebacks of expected errors")
    return p.parse_args(argv)


def settings_from(argv: list[str] | None = None):
    """The run's TrainSettings from its command line (the pipeline's memory plan reads the
    same, tests/test_memory.py)."""
    return _settings(parse_args(argv))


def _settings(a: argparse.Namespace):
    from steering.training.run import TrainSettings

    return TrainSettings(
        steering=steering_from_args(a),
        method=a.method,
        options=METHODS[a.method].options_from_args(a),
        do_eval=a.do_eval,
        test_only=a.test_only,
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
