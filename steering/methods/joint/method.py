"""Joint adaptation as a method (its model and callback: ``model.py`` beside this file):
PEFT LoRA of ``lora_rank`` plus post-block steering, trained together with two parameter
groups (``lora_lr``, ``adapter_lr``) and the orthogonality projection every
``orthogonal_freq`` optimizer steps (PROTOCOL.md section 5). Trained by
``scripts/train_joint.py`` (the official joint script's flags). Checkpoint: our steering
files, ``lora/`` in PEFT's format and ``method.json``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from steering.methods.base import Method, Setting, write_method_file
from steering.methods.steering import (
    STEERING_SETTINGS,
    read_by,
    steering_count,
    steering_flags,
    vector_problems,
)
from steering.runtime.precision import PRECISIONS

# Steering settings the joint script has no flag for.
UNSUPPORTED = {"kind": "vector", "sites": "submodules_official", "positions": "last"}
JOINT_FLAGS = ("scheduler", "lora_lr", "adapter_lr", "orthogonal_freq", "orthogonal_side")
JOINT_OPTIONS = {
    "lora_rank": 8,
    "lora_lr": None,
    "adapter_lr": None,
    "orthogonal_freq": "step",
    "orthogonal_side": "input",
}


FREQUENCIES = ("step", "epoch", "init")


def parse_frequency(value: str | int) -> str | int:
    """``step`` | ``epoch`` | ``init`` | a positive integer (as int or digit string)."""
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        n = int(value)
        if n < 1:
            raise ValueError(f"--orthogonal-freq {value!r} must be a positive integer")
        return n
    if value not in FREQUENCIES:
        raise ValueError(
            f"--orthogonal-freq {value!r} is invalid; choose {list(FREQUENCIES)} or an integer N"
        )
    return value


class Joint(Method):
    name = "joint"
    summary = "LoRA + post-block steering trained together, with orthogonality"
    script = "scripts/train_joint.py"
    OPTIONS = JOINT_OPTIONS  # scheduler is a training setting; the steering keys a SteeringConfig
    precisions = PRECISIONS
    activation_factor = 2.2  # measured: benchmarks/memory_plan.py at the 100M shape
    settings = (
        Setting("lora_rank", {"type": "integer", "minimum": 1}, 8, "the LoRA rank (alpha = r)"),
        Setting("scheduler", {"enum": ["linear", "cosine"]}, None, "default cosine"),
        Setting("lora_lr", {"type": "number", "exclusiveMinimum": 0}, None, "LoRA group's lr"),
        Setting("adapter_lr", {"type": "number", "exclusiveMinimum": 0}, None, "adapters' lr"),
        Setting(
            "orthogonal_freq",
            {"anyOf": [{"enum": ["step", "epoch", "init"]}, {"type": "integer", "minimum": 1}]},
            None,
            "step | epoch | init | N optimizer steps",
        ),
        Setting("orthogonal_side", {"enum": ["input", "output"]}, None, "project W_down or W_up"),
        *STEERING_SETTINGS,
    )

    def keys(self, raw: dict[str, Any]) -> tuple[str, ...]:
        return read_by(super().keys(raw), raw)

    def config_problems(self, where: str, raw: dict[str, Any]) -> list[str]:
        return vector_problems(where, raw) + [
            f"{where}: joint adaptation does not support {key}: {value}"
            for key, value in UNSUPPORTED.items()
            if raw.get(key) == value
        ]

    def train_flags(self, entry: dict[str, Any]) -> list[str]:
        args = ["--no-eval", "--lora-rank", str(entry.get("lora_rank", 8))]
        for key in JOINT_FLAGS:
            if entry.get(key) is not None:
                args += [f"--{key.replace('_', '-')}", str(entry[key])]
        return args + steering_flags(entry)

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--lora-rank", type=int, default=8, help="LoRA r (alpha = r, dropout 0)"
        )
        parser.add_argument("--lora-lr", type=float, help="the LoRA parameters' lr (default: --lr)")
        parser.add_argument(
            "--adapter-lr", type=float, help="the steering adapters' lr (default: --lr)"
        )
        parser.add_argument(
            "--orthogonal-freq", default="step", help="step | epoch | init | N optimizer steps"
        )
        parser.add_argument(
            "--orthogonal-side",
            default="input",
            choices=["input", "output"],
            help="project the adapter's W_down (official) or W_up",
        )

    def options_from_args(self, args) -> dict[str, Any]:
        return {key: getattr(args, key) for key in JOINT_OPTIONS}

    def check_options(self, options: dict[str, Any]) -> dict[str, Any]:
        options = dict(options)
        if options.get("orthogonal_freq") is not None:  # "100" from the command line
            options["orthogonal_freq"] = parse_frequency(options["orthogonal_freq"])
        return super().check_options(options)

    def steering_from_entry(self, entry: dict[str, Any]):
        from steering.methods.steering import steering_of

        return steering_of(entry)

    def variant_name(self, options: dict[str, Any], steering) -> str:
        return f"joint_lora{options['lora_rank']}_{steering.variant_name()}"

    def build(self, base, options: dict[str, Any], steering=None, precision: str = "fp32"):
        from steering.config import SteeringConfig
        from steering.methods.joint.model import JointModel
        from steering.runtime.precision import trainable_dtype

        config = steering or SteeringConfig()
        return JointModel(base, config, options["lora_rank"], trainable_dtype(precision))

    def estimate(self, shape, options: dict[str, Any], steering=None) -> int:
        from steering.methods.lora import lora_count

        return lora_count(shape, options["lora_rank"]) + steering_count(shape, steering)

    def base_parameters(self, model) -> int:
        from steering.methods.lora import without_lora

        return without_lora(model.lora)

    def trainer_extras(self, model, settings) -> dict[str, Any]:
        """Two AdamW parameter groups (LoRA, adapters) with their own learning rates, and the
        orthogonality callback."""
        import torch

        from steering.methods.joint.model import OrthogonalityCallback

        o, lr = settings.options, settings.lr
        optimizer = torch.optim.AdamW(
            [
                {"params": model.lora_parameters(), "lr": o["lora_lr"] or lr, "name": "lora"},
                {
                    "params": model.adapter_parameters(),
                    "lr": o["adapter_lr"] or lr,
                    "name": "adapters",
                },
            ],
            lr=lr,
            weight_decay=settings.weight_decay,
        )
        callback = OrthogonalityCallback(model, o["orthogonal_freq"], o["orthogonal_side"])
        return {"optimizers": (optimizer, None), "callbacks": [callback]}

    def save(self, model, path: Path, settings) -> None:
        model.steered.save_pretrained(path)
        model.lora.save_pretrained(path / "lora")
        meta = {"lora_rank": settings.options["lora_rank"], "base_model": settings.model_name}
        write_method_file(path, self.name, meta)

    def load_on(self, base, path: Path, settings=None):
        """LoRA in PEFT's format, then our steering adapter on the same model."""
        from peft import PeftModel

        from steering.model import SteeredModel
        from steering.runtime.precision import trainable_dtype

        lora = PeftModel.from_pretrained(base, path / "lora").eval()
        dtype = trainable_dtype(getattr(settings, "precision", "fp32"))
        return SteeredModel.from_pretrained(lora.get_base_model(), path, dtype)
