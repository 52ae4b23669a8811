"""What a method is: one interface for everything that trains (or evaluates) a variant.

A method (post-block steering, LoRA, full fine-tuning, LoReFT, joint adaptation, the
untrained base model, or one a user adds) is a subclass of ``Method`` in a module of its own,
registered by name in ``steering.methods.METHODS``. It says:

- **its settings** (``Setting``): the keys a pipeline variant of this method may set, each
  with a JSON schema (the config is validated against it, swept values too) and a default;
  ``train_flags`` turns a variant into the training script's flags, ``add_arguments`` /
  ``options_from_args`` are that script's side, ``check_options`` validates them;
- **its model**: ``build(base, options, steering)`` -> the model the Trainer trains, with
  ``trainable_parameters`` and ``base_parameters`` for the tables;
- **its checkpoint**: ``save(model, path, settings)`` and ``load(path, settings)`` for
  evaluation (``method.json`` names the method of a checkpoint directory);
- **Trainer extras** (optimizer parameter groups, callbacks) and a variant name.

The config side (``settings``, ``keys``, ``config_problems``, ``train_flags``) imports no
torch: the Snakemake DAG of the paper grid is built from it in seconds. Model code is
imported inside the methods that need it. The defaults here make a new method small: a
``build`` and its ``settings``; its checkpoint is then its trainable tensors
(``method.safetensors``) plus ``method.json`` with its options.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import argparse

    from torch import nn

# Training settings a variant (or dataset, or `training`) may set for a method that trains.
TRAINING = (
    "lr",
    "warmup_ratio",
    "weight_decay",
    "epochs",
    "bs",
    "grad_accum",
    "length_grouping",
    "logits",
    "packing",
)
# The objective and its settings (the training scripts' --objective and GRPO flags): keys of
# every method that trains.
OBJECTIVE = ("objective", "grpo")
METHOD_FILE = "method.json"
WEIGHTS_FILE = "method.safetensors"


@dataclass(frozen=True)
class Setting:
    """One setting of a method: its config key (also its key in ``options``), the JSON
    schema of a value, its default, and the training-script flag (``--<key with dashes>``
    unless given)."""

    key: str
    schema: dict
    default: Any = None
    help: str = ""
    flag: str | None = None

    @property
    def cli_flag(self) -> str:
        return self.flag or f"--{self.key.replace('_', '-')}"


class Method:
    """Base class of every method; see the module docstring for the parts."""

    name: ClassVar[str]
    summary: ClassVar[str] = ""
    script: ClassVar[str] = "scripts/train.py"  # the script its pipeline runs train with
    trains: ClassVar[bool] = True  # False: evaluated as it is (the untrained base model)
    settings: ClassVar[tuple[Setting, ...]] = ()
    OPTIONS: ClassVar[dict[str, Any] | None] = None  # see option_defaults
    # --precision values it runs under (steering/runtime/precision.py); bf16 needs the method to
    # make its trainable tensors in float32 on a bfloat16 base, so a new method opts in.
    precisions: ClassVar[tuple[str, ...]] = ("fp32", "tf32")
    # FSDP over a job's GPUs: a method whose save() takes the gathered ``state`` opts in
    shardable: ClassVar[bool] = False
    # An intervention on the prompt's positions: a forward over prompt + completion must say
    # where the prompt ends (labels from the completion on), as training does (lm-eval, GRPO)
    prompt_positions: ClassVar[bool] = False
    # The memory plan's activations times this (steering/training/memory.py): methods that keep more
    # per token than the plan's basis (LoRA keeps each adapted projection's input and output)
    activation_factor: ClassVar[float] = 1.0

    # --- the config (no torch) ---------------------------------------------------------------
    def keys(self, raw: dict[str, Any]) -> tuple[str, ...]:
        """The variant keys this method reads for the variant ``raw`` (as written)."""
        return tuple(s.key for s in self.settings) + (TRAINING + OBJECTIVE if self.trains else ())

    def config_problems(self, where: str, raw: dict[str, Any]) -> list[str]:
        """Combinations of this method's keys it cannot run (``where`` names the variant)."""
        return []

    def defaults(self) -> dict[str, Any]:
        """The settings' defaults, filled into a variant of this method by the config check."""
        return {s.key: s.default for s in self.settings if s.default is not None}

    def train_flags(self, entry: dict[str, Any]) -> list[str]:
        """The training script's method flags for a (default-filled) variant ``entry``."""
        out = ["--method", self.name]
        for s in self.settings:
            value = entry.get(s.key, s.default)
            if value is None:
                continue
            if s.schema.get("type") == "boolean":
                out += [s.cli_flag] if value else []
            else:
                out += [s.cli_flag, str(value)]
        return out

    # --- the training script ----------------------------------------------------------------
    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """This method's flags on the training script (``--method`` chooses the method)."""
        kinds = {"integer": int, "number": float, "string": str}
        group = parser.add_argument_group(f"--method {self.name}")
        for s in self.settings:
            kind, dest = s.schema.get("type"), self._dest(s)
            if kind == "boolean":
                group.add_argument(s.cli_flag, dest=dest, action="store_true", help=s.help)
            else:
                group.add_argument(
                    s.cli_flag, dest=dest, type=kinds.get(kind, str), default=None, help=s.help
                )

    def _dest(self, setting: Setting) -> str:
        return f"{self.name}__{setting.key}"  # methods may share a key, never a flag's value

    def options_from_args(self, args: argparse.Namespace) -> dict[str, Any]:
        """The options the parsed flags give (unset ones take their defaults later)."""
        given = {s.key: getattr(args, self._dest(s), None) for s in self.settings}
        return {k: v for k, v in given.items() if v is not None}

    def option_defaults(self) -> dict[str, Any]:
        """The keys of ``TrainSettings.options`` for this method, with their defaults: those
        of ``OPTIONS`` when the class sets it, else of its settings."""
        if self.OPTIONS is not None:
            return dict(self.OPTIONS)
        return {s.key: s.default for s in self.settings}

    def check_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """``options`` with defaults filled and every value checked against its setting's
        schema; ValueError names the key, the value and what is allowed."""
        defaults = self.option_defaults()
        unknown = sorted(set(options) - set(defaults))
        if unknown:
            raise ValueError(
                f"method {self.name} has no option(s) {unknown}; its options: {sorted(defaults)}"
            )
        out = {**defaults, **options}
        schemas = {s.key: s.schema for s in self.settings}
        for key, value in out.items():
            problem = None if value is None else _check(schemas.get(key, {}), value)
            if problem:
                raise ValueError(f"{key}={value!r} {problem} (method {self.name})")
        return out

    def options_from_entry(self, entry: dict[str, Any]) -> dict[str, Any]:
        """The options a (default-filled) pipeline variant gives, as its training flags
        would (for plans made without running the script)."""
        defaults = self.option_defaults()
        return {k: entry[k] for k in defaults if entry.get(k) is not None}

    def steering_from_entry(self, entry: dict[str, Any]):
        """The ``SteeringConfig`` of a variant, for the methods that steer (else None)."""
        return None

    def variant_name(self, options: dict[str, Any], steering) -> str:
        """The run's name in default output paths (``<dataset>_model/<model>_<variant>``)."""
        parts = [self.name] + [f"{k}{v}" for k, v in sorted(options.items())]
        return "_".join(str(p) for p in parts)

    # --- the model ---------------------------------------------------------------------------
    def check_precision(self, precision: str) -> None:
        if precision not in self.precisions:
            raise ValueError(
                f"method {self.name} runs under --precision {' or '.join(self.precisions)}, "
                f"not {precision}"
            )

    def check_sharding(self) -> None:
        if not self.shardable:
            raise ValueError(
                f"method {self.name} does not shard (sharding: fsdp is for methods whose "
                "weights do not fit one GPU: full fine-tuning); train it with DDP "
                "(gpus_per_train) instead"
            )

    def base_dtype(self, precision: str, training: bool = True) -> str:
        """What the base model is loaded in, for training or evaluation."""
        from steering.runtime.precision import base_dtype

        return base_dtype(precision)

    def autocast(self, precision: str) -> bool:
        """Whether training runs under bfloat16 autocast (the Trainer's ``bf16``)."""
        return False

    def build(
        self, base: nn.Module, options: dict[str, Any], steering=None, precision: str = "fp32"
    ) -> nn.Module:
        """The model the Trainer trains, made from ``base`` (loaded in ``base_dtype``; its
        parameters come frozen or not, as loaded); only what should train may require grad,
        and under ``precision`` bf16 that must be float32."""
        raise NotImplementedError

    def trainable_parameters(self, model: nn.Module) -> int:
        return sum(p.numel() for p in model.parameters() if p.requires_grad)

    def base_parameters(self, model: nn.Module) -> int:
        """Parameters of the base model alone (the denominator of the trainable share)."""
        return sum(p.numel() for p in model.parameters() if not p.requires_grad)

    def estimate(self, shape, options: dict[str, Any], steering=None) -> int | None:
        """Its trainable parameters on a model of ``shape`` (``steering.training.memory.Shape``),
        from the shape alone, for the memory plan; None when the method cannot say."""
        return None

    def packing_refusal(self, options: dict[str, Any], steering) -> str | None:
        """Why this method cannot train on packed batches (``steering/training/packing.py``):
        None for an intervention that acts on every position alike."""
        return None

    def trainer_extras(self, model: nn.Module, settings) -> dict[str, Any]:
        """Extra ``Trainer`` keyword arguments (``optimizers``, ``callbacks``)."""
        return {}

    # --- the checkpoint ----------------------------------------------------------------------
    def save(self, model: nn.Module, path: Path, settings) -> None:
        """Write the checkpoint of a trained ``model`` to ``path`` (a directory). Default: the
        trainable tensors, then ``method.json`` with the options (last: a checkpoint with it
        is complete)."""
        from safetensors.torch import save_file

        from steering.runtime.io import atomic_path

        path.mkdir(parents=True, exist_ok=True)
        tensors = {
            n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad
        }
        with atomic_path(path / WEIGHTS_FILE) as tmp:
            save_file(tensors, str(tmp))
        write_method_file(
            path, self.name, {"options": settings.options, "base_model": settings.model_name}
        )

    def load(self, path: Path | None, settings) -> tuple[nn.Module, nn.Module]:
        """(the model to evaluate, the base model it runs on) for the checkpoint at ``path``,
        loaded as ``settings`` (``InferenceSettings``) say: the base model, then
        ``load_on`` it."""
        base = load_base(settings, self.base_dtype(settings.precision, training=False))
        return self.load_on(base, path, settings), base

    def load_on(self, base: nn.Module, path: Path, settings=None) -> nn.Module:
        """The checkpoint at ``path`` on ``base``, ready to evaluate. Default: the method
        built on ``base`` from the recorded options, the saved tensors put back."""
        from safetensors.torch import load_file

        info = read_method_file(path)
        precision = getattr(settings, "precision", "fp32")
        model = self.build(base, self.check_options(info.get("options", {})), None, precision)
        tensors = load_file(path / WEIGHTS_FILE)
        named = dict(model.named_parameters())
        missing = sorted(n for n, p in named.items() if p.requires_grad and n not in tensors)
        extra = sorted(set(tensors) - set(named))
        if missing or extra:
            raise ValueError(
                f"{path / WEIGHTS_FILE} does not fit method {self.name} on this base model: "
                f"missing {missing[:5]}, unexpected {extra[:5]}"
            )
        for name, value in tensors.items():
            named[name].data.copy_(value.to(named[name].device, named[name].dtype))
        return model.eval()

    def provenance(self, model: nn.Module, path: Path | None) -> dict[str, Any]:
        """What an evaluation's provenance records about the evaluated checkpoint (merged
        into its settings). Default: ``method.json``."""
        return {"method": read_method_file(path)}


def load_base(settings, dtype: str):
    """The base model an evaluation runs on, in ``dtype`` (``InferenceSettings``: its name
    and device)."""
    from steering.loading.loader import load_base_model

    s = settings
    folder = getattr(s, "offload_folder", None)
    return load_base_model(s.model_name, dtype, s.device, s.device_map, folder)


def write_method_file(path: Path, method: str, meta: dict[str, Any]) -> None:
    """``method.json``: which method wrote this checkpoint, and what it needs to load it."""
    from steering.runtime.io import write_json

    write_json(Path(path) / METHOD_FILE, {"method": method, **meta})


def read_method_file(path: Path) -> dict[str, Any]:
    try:
        return json.loads((Path(path) / METHOD_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot read {Path(path) / METHOD_FILE}: {e}") from e


def _check(schema: dict, value: Any) -> str | None:
    """A value against the small JSON-schema subset settings use (type, enum, bounds,
    pattern, anyOf); None when it fits, else what is wrong."""
    import re

    if "anyOf" in schema:
        found = [_check(s, value) for s in schema["anyOf"]]
        return None if any(f is None for f in found) else " and ".join(f for f in found if f)
    if "enum" in schema and value not in schema["enum"]:
        return f"is not one of {schema['enum']}"
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind] if kind else []
    types = {
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "string": lambda v: isinstance(v, str),
        "boolean": lambda v: isinstance(v, bool),
        "null": lambda v: v is None,
    }
    if kinds and not any(types[k](value) for k in kinds):
        return f"must be of type {' or '.join(kinds)}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            return f"must be >= {schema['minimum']}"
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            return f"must be > {schema['exclusiveMinimum']}"
    if isinstance(value, str) and "pattern" in schema and not re.search(schema["pattern"], value):
        return f"does not match {schema['pattern']!r}"
    return None
