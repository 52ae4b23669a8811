"""A checkpoint of any method, loaded for lm-eval: the base model it names, the model its
method evaluates, and what the results record about it (no lm-eval import).

The base model comes from the checkpoint (``method.json``'s ``base_model``, or
``steering_config.json``'s ``base_model.name_or_path``) unless ``pretrained`` names one; a
checkpoint that records another base than ``pretrained`` is refused, naming both. An
official checkpoint file records none, so it needs ``pretrained``. Loading goes through the
methods registry (``steering.methods.for_checkpoint`` and the method's ``load``), exactly as
``scripts/inference.py`` loads it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from steering.checkpoint import CONFIG_NAME
from steering.loading.loader import ModelNotFound, model_short_name
from steering.methods import METHOD_FILE, for_checkpoint
from steering.methods.base import read_method_file

OFFICIAL_FILES = ("model.safetensors", "pytorch_model.bin")


@dataclass
class Loaded:
    """``model``: what forward and generate go through; ``base``: the Hugging Face model
    underneath it (hooks, LoRA layers and all), which lm-eval's ``HFLM`` holds."""

    model: nn.Module
    base: nn.Module
    method: str
    base_model: str
    checkpoint: str | None
    precision: str
    info: dict[str, Any] = field(default_factory=dict)  # the checkpoint's provenance

    def provenance(self) -> dict[str, Any]:
        from steering.runtime.provenance import git_commit, package_version

        return {
            "method": self.method,
            "checkpoint": self.checkpoint,
            "base_model": self.base_model,
            "precision": self.precision,
            **self.info,
            "package_version": package_version(),
            "git_commit": git_commit(),
        }


def recorded_base(path: Path) -> str | None:
    """The base model a checkpoint says it was trained on; None for an official file. A
    directory that is no checkpoint is a ValueError saying what one holds."""
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if path.is_dir() and (path / METHOD_FILE).is_file():
        return read_method_file(path).get("base_model")
    if path.is_dir() and (path / CONFIG_NAME).is_file():
        try:
            meta = json.loads((path / CONFIG_NAME).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"cannot read {path / CONFIG_NAME}: {e}") from e
        return (meta.get("base_model") or {}).get("name_or_path")
    if path.is_file() or any((path / name).is_file() for name in OFFICIAL_FILES):
        return None  # the official code's Trainer file: no base recorded
    raise ValueError(
        f"{path} is not a checkpoint: it holds none of {METHOD_FILE}, {CONFIG_NAME} (ours) or "
        f"{' / '.join(OFFICIAL_FILES)} (the official code's); give the directory a training "
        "script wrote (its --output-dir)"
    )


def same_model(a: str, b: str) -> bool:
    """Whether two model names mean one model: equal, the same local directory, or (when
    one is not a local directory here: a hub id, a path from another working directory) the
    same last path component."""
    if a == b:
        return True
    pa, pb = Path(a), Path(b)
    if pa.is_dir() and pb.is_dir():
        return pa.resolve() == pb.resolve()
    return model_short_name(a) == model_short_name(b)


def base_of(checkpoint: str | None, pretrained: str | None) -> str:
    """The base model to load: ``pretrained`` when it agrees with the checkpoint, else the
    checkpoint's own."""
    path = Path(checkpoint) if checkpoint else None
    recorded = recorded_base(path) if path is not None else None
    if pretrained and recorded and not same_model(recorded, pretrained):
        raise ValueError(
            f"checkpoint {path} was trained on base model {recorded!r}, but pretrained="
            f"{pretrained!r}; drop pretrained= to evaluate it on {recorded!r}, or give that model"
        )
    name = pretrained or recorded
    if not name:
        raise ValueError(
            "give checkpoint=<dir> or pretrained=<base model>"
            if path is None
            else f"checkpoint {path} records no base model (an official file): give "
            "pretrained=<the base model it was trained on>"
        )
    return name


def load(
    checkpoint: str | None = None,
    pretrained: str | None = None,
    precision: str = "fp32",
    device: str | None = None,
    device_map: str | None = None,
    activation: str | None = "silu",
    intervene_last: bool | None = None,
) -> Loaded:
    """The checkpoint (or, without one, the base model ``pretrained``) ready to evaluate.
    ``activation`` and ``intervene_last``: what an official checkpoint file was trained with
    (ours record it; given for ours, they must agree)."""
    from steering.evaluation.inference import InferenceSettings
    from steering.loading.loader import pick_device
    from steering.runtime.precision import apply

    name = base_of(checkpoint, pretrained)
    path = Path(checkpoint) if checkpoint else None
    method = for_checkpoint(path)
    settings = InferenceSettings(
        model_name=name,
        dataset_name="",  # no task of ours: lm-eval's tasks
        ckpt_path=checkpoint,
        precision=precision,
        device=device,
        device_map=device_map,
        activation=activation,
        intervene_last=intervene_last,
    )
    method.check_precision(settings.precision)
    apply(settings.precision, pick_device(device))
    try:
        model, base = method.load(path, settings)
    except ModelNotFound as e:
        if pretrained or path is None:
            raise
        raise ModelNotFound(f"{e} (the base model recorded in {path}; give pretrained=)") from e
    info = {"trainable_parameters": trainable_parameters(method, model, path)}
    if path is not None:
        info["checkpoint_info"] = method.provenance(model, path)
    return Loaded(model, base, method.name, name, checkpoint, settings.precision, info)


def trainable_parameters(method, model: nn.Module, path: Path | None) -> int | None:
    """What the run trained: its ``training.json`` says; else the loaded model's count (0
    for the base model; None where loading froze them, as PEFT does)."""
    if path is None:
        return 0
    summary = path / "training.json" if path.is_dir() else None
    if summary is not None and summary.is_file():
        try:
            return json.loads(summary.read_text(encoding="utf-8"))["trainable_parameters"]
        except (OSError, json.JSONDecodeError, KeyError):
            pass
    return method.trainable_parameters(model) or None
