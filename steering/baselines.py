"""What the baselines share: PEFT LoRA set up as the protocol says (the ``lora`` and ``joint``
methods), the parameter counts of the tables, and ``prepare`` by name for callers of the
API before ``steering.methods`` (where each method's module now holds its logic).

LoRA: r, lora_alpha = r (scaling 1), dropout 0, no bias, on the architecture's seven
projections (``Architecture.lora_targets``); r * (d_in + d_out) trainable parameters per
adapted projection.
"""

from __future__ import annotations

from torch import nn

from steering.architectures import get_architecture

BASELINES = ("lora", "full")  # the ones ``prepare`` sets up (of steering.methods.METHODS)


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
    """The model the Trainer trains for baseline ``method``: ``METHODS[method].build``."""
    from steering.methods import METHODS

    if method not in BASELINES:
        raise ValueError(f"unknown baseline method {method!r}; choose one of {list(BASELINES)}")
    built = METHODS[method]
    options = {"rank": lora_rank} if "rank" in built.option_defaults() else {}
    return built.build(base, built.check_options(options))


def trainable_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def base_parameters(model: nn.Module) -> int:
    """Parameters of the underlying base model (LoRA weights excluded)."""
    return sum(p.numel() for n, p in model.named_parameters() if "lora_" not in n)
