"""The full fine-tuning baseline: every base parameter trained. Checkpoint: ``method.json``
plus ``model/``, an ordinary Hugging Face model directory (evaluated without loading the
base model first)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from steering.methods.base import Method, write_method_file
from steering.runtime.precision import PRECISIONS


class Full(Method):
    name = "full"
    summary = "full fine-tuning: every parameter of the base model"
    precisions = PRECISIONS
    shardable = True

    def variant_name(self, options: dict[str, Any], steering) -> str:
        return "full"

    def base_dtype(self, precision: str, training: bool = True) -> str:
        """float32 master weights for training under any precision (bf16: autocast)."""
        from steering.runtime.precision import base_dtype

        return "float32" if training else base_dtype(precision)

    def autocast(self, precision: str) -> bool:
        return precision == "bf16"

    def build(self, base, options: dict[str, Any], steering=None, precision: str = "fp32"):
        base.requires_grad_(True)
        return base

    def estimate(self, shape, options: dict[str, Any], steering=None) -> int:
        return shape.parameters()

    def base_parameters(self, model) -> int:
        return sum(p.numel() for p in model.parameters())  # all trained: the whole model

    def save(self, model, path: Path, settings, state=None) -> None:
        """An ordinary HF model directory; ``state``: the full state dict FSDP gathered."""
        model.save_pretrained(path / "model", state_dict=state)
        write_method_file(path, self.name, {"base_model": settings.model_name})

    def load(self, path: Path | None, settings):
        from steering.loading.loader import load_base_model

        s = settings
        dtype = self.base_dtype(s.precision, training=False)
        folder = getattr(s, "offload_folder", None)
        model = load_base_model(str(path / "model"), dtype, s.device, s.device_map, folder)
        return model, model  # the saved model is the whole model: no base to load first
