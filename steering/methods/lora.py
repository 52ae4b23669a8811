"""The LoRA baseline: PEFT LoRA with r = alpha = ``rank`` (scaling 1), dropout 0, no bias, on
the architecture's seven projections (``Architecture.lora_targets``); r * (d_in + d_out)
trainable parameters per adapted projection. ``add_lora`` is also the LoRA of joint
adaptation. Checkpoint: ``method.json`` plus ``lora/`` in PEFT's own format (loadable by
``PeftModel.from_pretrained``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from steering.methods.base import Method, Setting, write_method_file
from steering.runtime.precision import PRECISIONS


def add_lora(base, rank: int = 8):
    """PEFT LoRA as the protocol sets it (alpha = r, dropout 0, no bias) on the architecture's
    projections; returns the PeftModel (the LoRA layers are injected into ``base``)."""
    from peft import LoraConfig, get_peft_model

    from steering.architectures import get_architecture

    config = LoraConfig(
        r=rank,
        lora_alpha=rank,
        lora_dropout=0.0,
        bias="none",
        target_modules=list(get_architecture(base).lora_targets),
        task_type="CAUSAL_LM",
    )
    return get_peft_model(base, config)


def without_lora(model) -> int:
    """Parameters of a LoRA-injected model, its LoRA weights left out (the base's count)."""
    return sum(p.numel() for n, p in model.named_parameters() if "lora_" not in n)


def lora_count(shape, rank: int) -> int:
    """Trainable parameters of LoRA of ``rank`` on the seven projections: r (in + out) each."""
    return shape.layers * rank * sum(i + o for i, o in shape.projections())


class Lora(Method):
    name = "lora"
    summary = "PEFT LoRA on the seven projections (r = alpha = rank, dropout 0)"
    settings = (
        Setting("rank", {"type": "integer", "minimum": 1}, 8, "LoRA r (alpha = r)", "--lora-rank"),
    )
    precisions = PRECISIONS
    activation_factor = 2.2  # measured: benchmarks/memory_plan.py at the 100M shape

    def variant_name(self, options: dict[str, Any], steering) -> str:
        return f"lora_r{options['rank']}"

    def build(self, base, options: dict[str, Any], steering=None, precision: str = "fp32"):
        """PEFT keeps LoRA weights in float32 on a bfloat16 base (``autocast_adapter_dtype``)
        and casts their input and output: the bf16 precision policy as it is."""
        return add_lora(base, options["rank"])

    def estimate(self, shape, options: dict[str, Any], steering=None) -> int:
        return lora_count(shape, options["rank"])

    def base_parameters(self, model) -> int:
        return without_lora(model)

    def save(self, model, path: Path, settings) -> None:
        from steering.architectures import get_architecture

        model.save_pretrained(path / "lora")
        targets = list(get_architecture(model.get_base_model()).lora_targets)
        meta = {"lora_rank": settings.options["rank"], "targets": targets}
        write_method_file(path, self.name, {**meta, "base_model": settings.model_name})

    def load_on(self, base, path: Path, settings=None):
        from peft import PeftModel

        if not (path / "lora" / "adapter_config.json").is_file():
            raise FileNotFoundError(f"{path} is a LoRA checkpoint without lora/adapter_config.json")
        return PeftModel.from_pretrained(base, path / "lora").eval()
