"""The flags the training and inference scripts share, as the official command line spells
them (``scripts/train.py``, ``scripts/train_joint.py``, ``scripts/inference.py``): their
defaults come from ``steering.methods.base.TRAINING``, so a flag and a config key cannot
disagree. How a script reports a bad value is ``steering.runtime.cli``'s.
"""

from __future__ import annotations

import argparse

from steering.methods.base import TRAINING

SINGLE_BOS_HELP = (
    "chat-template models (Gemma): tokenize the rendered template so the input starts with one "
    "BOS; by default, as the official code, the template's BOS plus the tokenizer's: two"
)


def add_checkpointing_flags(p: argparse.ArgumentParser) -> None:
    """Periodic checkpoints for resuming (both training scripts)."""
    p.add_argument(
        "--save-steps",
        type=int,
        default=0,
        help="checkpoint the trainable weights and optimizer every N optimizer steps, so a "
        "rerun of the same command resumes from the last one (default 0: never)",
    )
    p.add_argument(
        "--resume-dir",
        help="where those checkpoints go and a rerun resumes from (default: <output>.resume)",
    )
    p.add_argument(
        "--keep-checkpoints",
        action="store_true",
        help="keep the last two periodic checkpoints after training (default: delete them)",
    )


# TrainSettings fields that both training scripts take from flags of the same name.
SHARED_TRAIN_FLAGS = (
    "model_name",
    "dataset_name",
    *TRAINING,  # every training method's settings (lr ... bs, grad_accum, logits)
    "seed",
    "output_dir",
    "train_log",
    "data_dir",
    "max_train_samples",
    "max_eval_samples",
    "eval_batch_size",
    "wandb",
    "device",
    "save_steps",
    "resume_dir",
    "keep_checkpoints",
    "single_bos",
    "sharding",
)


def shared_train_settings(a: argparse.Namespace) -> dict:
    """The TrainSettings keyword arguments common to scripts/train.py and train_joint.py."""
    from steering.runtime.precision import resolve

    shared = {name: getattr(a, name) for name in SHARED_TRAIN_FLAGS}
    return shared | {"progress": not a.no_progress, "precision": resolve(a.precision, a.dtype)}


PRECISION_HELP = (
    "fp32 (default, the protocol), tf32 (fp32 weights, TF32 matmuls on GPUs that have them), "
    "bf16 (the frozen base in bfloat16, every trainable tensor in float32)"
)
DTYPE_HELP = "the older spelling: float32 = --precision fp32, bfloat16 = --precision bf16"


def add_batch_flags(p: argparse.ArgumentParser) -> None:
    """``--bs`` and ``--grad-accum``: a training step's rows per device, and how many steps
    make one optimizer step (both training scripts)."""
    p.add_argument("--bs", type=int, default=8, help="rows per device per step (default 8)")
    p.add_argument(
        "--grad-accum",
        type=int,
        default=2,
        help="steps per optimizer step (default 2: 8 x 2, the protocol's 16 rows; --bs 4 "
        "--grad-accum 4 is the same batch, and the same loss, in less memory)",
    )


def add_sharding_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--sharding",
        choices=["none", "fsdp"],
        default="none",
        help="fsdp: shard weights, gradients and optimizer states over torchrun's processes "
        "(full fine-tuning of models one GPU cannot hold)",
    )


LENGTH_GROUPING_HELP = (
    "batches of rows of similar length (little padding, ~1.5x faster on real data) instead of "
    "the official code's random batches; not the paper's batch order (docs/decisions.md)"
)


def add_length_grouping_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--length-grouping", action="store_true", help=LENGTH_GROUPING_HELP)


LOGITS_HELP = (
    "supervised (default): compute the LM head and the loss only at positions whose next token "
    "is supervised (same loss and gradients, faster); all: at every position"
)


def add_logits_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--logits", choices=["supervised", "all"], default="supervised", help=LOGITS_HELP
    )
    p.add_argument(
        "--packing",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the rows of a batch as one sequence, no padding (default; the same loss and "
        "gradients: steering/training/packing.py); --no-packing pads each batch to its longest "
        "row. Methods and architectures it is not exact for pad anyway, with a note",
    )


def add_precision_flags(p: argparse.ArgumentParser) -> None:
    from steering.runtime.precision import FROM_DTYPE, PRECISIONS

    p.add_argument("--precision", choices=list(PRECISIONS), help=PRECISION_HELP)
    p.add_argument("--dtype", choices=[*FROM_DTYPE, "float16"], help=DTYPE_HELP)


def add_grpo_flags(p: argparse.ArgumentParser) -> None:
    """The GRPO flags: ``--objective`` and the official GSM8K-GRPO flags, plus ``--max-steps``
    and ``--reward-weights`` (``grpo_settings`` reads them)."""
    g = p.add_argument_group(
        "GRPO (reinforcement learning with TRL's GRPO: GSM8K-GRPO, PROTOCOL.md section 8, or "
        "--objective grpo on any task)"
    )
    g.add_argument(
        "--objective",
        choices=["sft", "grpo"],
        default=None,
        help="sft (supervised, the default) or grpo: the task's own prompts rewarded by its "
        "parsers (GSM8K-GRPO is always grpo)",
    )
    g.add_argument("--num-generations", type=int, help="completions per prompt (default 6)")
    g.add_argument(
        "--max-prompt-length", type=int, help="prompt tokens kept, from the end (default 512)"
    )
    g.add_argument(
        "--max-completion-length",
        type=int,
        help="new tokens per completion (default 1024; with --objective grpo the task's)",
    )
    g.add_argument("--system-prompt", help="the system turn (default: the official one)")
    g.add_argument("--max-steps", type=int, help="optimizer steps (default: the official 1500)")
    g.add_argument(
        "--reward-weights",
        nargs="+",
        metavar="NAME=W",
        help="reward weights over the defaults (GSM8K-GRPO: format=1 accuracy=2; a task: "
        "format=1 accuracy=2 accuracy_strict=0, format where the task has one)",
    )


GRPO_FLAGS = ("num_generations", "max_prompt_length", "max_completion_length", "system_prompt")
GRPO_FLAGS += ("max_steps", "reward_weights")


def grpo_settings(a: argparse.Namespace):
    """The GRPO settings of a GRPO run (GSM8K-GRPO, or ``--objective grpo``); None for a
    supervised one, where a GRPO flag is an error."""
    given = {k: getattr(a, k) for k in GRPO_FLAGS if getattr(a, k) is not None}
    official = a.dataset_name == "GSM8K-GRPO"
    if official and a.objective == "sft":
        raise ValueError("GSM8K-GRPO trains with GRPO only; drop --objective sft")
    if not official and a.objective != "grpo":
        if given:
            flag = "--" + next(iter(given)).replace("_", "-")
            raise ValueError(f"{flag} applies to GRPO only: --objective grpo or GSM8K-GRPO")
        return None
    if not official and "system_prompt" in given:
        raise ValueError("--system-prompt applies to GSM8K-GRPO only; a task keeps its prompts")
    import os

    from steering.tasks import get_task
    from steering.training.grpo_settings import GRPOSettings, parse_weights

    if not official:
        given.setdefault("max_completion_length", get_task(a.dataset_name).max_new_tokens)
    if "reward_weights" in given:
        given["reward_weights"] = parse_weights(given["reward_weights"])
    g = GRPOSettings(**given)
    g.check(a.model_name, a.bs, int(os.environ.get("WORLD_SIZE", "1")), a.dataset_name)
    return g


def report_training(s: dict) -> None:
    """One line about the finished run, from the main process only (DDP runs several)."""
    if not s.get("main_process", True):
        return
    loss = s["loss_history"][-1][1] if s["loss_history"] else s["train_loss"]
    resumed = f", resumed from step {s['resumed_from_step']}" if s["resumed_from_step"] else ""
    print(
        f"saved {s['variant']} to {s['checkpoint']} "
        f"({s['optimizer_steps']} steps{resumed}, last loss {loss})"
    )
