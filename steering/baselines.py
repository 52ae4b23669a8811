"""Baseline methods of the paper's tables, trained and evaluated like steering runs.

- ``lora``: PEFT LoRA with r, lora_alpha = r (scaling 1), dropout 0, no bias, on the
  architecture's seven projections (``Architecture.lora_targets``); r * (d_in + d_out)
  trainable parameters per adapted projection.
- ``full``: every base parameter trained (full fine-tuning).

Checkpoints: a directory with ``method.json`` ({"method", "lora_rank", "targets", ...}) and
``lora/`` (PEFT's own format: ``adapter_config.json`` + ``adapter_model.safetensors``, loadable
by ``PeftModel.from_pretrained``) or ``model/`` (a full HF model directory). A ``joint``
checkpoint (``steering/joint.py``) has ``lora/`` plus our steering files beside it; a ``reft``
one (``steering/reft.py``) ``reft_config.json`` and ``reft.safetensors``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from steering.architectures import get_architecture
from steering.io import write_json

METHODS = ("steering", "lora", "full", "joint", "reft")
METHOD_FILE = "method.json"


def add_lora(base: nn.Module, rank: int = 8) -> nn.Module:
    """PEFT LoRA as the protocol sets it (alpha = r, dropout 0, no bias) on the architecture's
    projections; returns the PeftModel (the LoRA layers are injected into ``base``)."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=rank,
        lora_alpha=rank,
        lora_dropout=0.0,
        bias="none",
        target_modules=list(get_architecture(base).lora_targets),
        task_type="CAUSAL_LM",
    )
    return get_peft_model(base, config)


def prepare(base: nn.Module, method: str, lora_rank: int = 8) -> nn.Module:
    """The model the Trainer trains for a baseline ``method`` (the base itself for ``full``)."""
    if method == "lora":
        return add_lora(base, lora_rank)
    if method == "full":
        base.requires_grad_(True)
        return base
    raise ValueError(f"unknown baseline method {method!r}; choose one of {list(METHODS[1:])}")


def trainable_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def base_parameters(model: nn.Module) -> int:
    """Parameters of the underlying base model (LoRA weights excluded)."""
    return sum(p.numel() for n, p in model.named_parameters() if "lora_" not in n)


def save(model: nn.Module, method: str, path: str | Path, meta: dict[str, Any]) -> Path:
    """Write a baseline checkpoint; ``method.json`` last, so a complete one has it."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if method == "reft":
        model.save(path)  # reft_config.json + reft.safetensors
    else:
        model.save_pretrained(path / ("model" if method == "full" else "lora"))
    write_json(path / METHOD_FILE, {"method": method, **meta})
    return path


def is_checkpoint(path: str | Path) -> bool:
    return (Path(path) / METHOD_FILE).is_file()


def load(
    base: nn.Module | None, path: str | Path, dtype, device, device_map: str | None = None
) -> nn.Module:
    """The evaluated model of a baseline checkpoint: LoRA on ``base``, or the saved full model."""
    path = Path(path)
    info = json.loads((path / METHOD_FILE).read_text(encoding="utf-8"))
    method = info.get("method")
    if method == "lora":
        from peft import PeftModel

        if not (path / "lora" / "adapter_config.json").is_file():
            raise FileNotFoundError(f"{path} is a LoRA checkpoint without lora/adapter_config.json")
        return PeftModel.from_pretrained(base, path / "lora").eval()
    if method == "full":
        from steering.loader import load_base_model

        return load_base_model(str(path / "model"), dtype, device, device_map)
    if method == "reft":
        from steering.reft import ReftModel

        return ReftModel.load(base, path)
    if method == "joint":  # LoRA in PEFT's format, then our steering adapter on the same model
        from peft import PeftModel

        from steering.model import SteeredModel

        lora = PeftModel.from_pretrained(base, path / "lora").eval()
        return SteeredModel.from_pretrained(lora.get_base_model(), path)
    raise ValueError(f"{path / METHOD_FILE} names an unknown method {method!r}")
