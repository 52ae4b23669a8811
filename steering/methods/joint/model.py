"""Joint adaptation: PEFT LoRA on the base model's projections plus post-block steering,
trained together (PROTOCOL.md section 5), with the orthogonality constraint.

Orthogonality, applied every ``orthogonal_freq`` optimizer steps ("step", "epoch", "init" or
an integer N): for each layer, let V (H x k) be an orthonormal basis of the column space of
that layer's ``down_proj`` LoRA B (H x r, k = its rank; ``Architecture.mlp_out`` names the
projection in other families). Then, on the input side (the official
default), the adapter's W_down (r_a x H) becomes

    W_down (I - V V^T)

so the adapter reads nothing from the directions LoRA writes into; on the output side
(option) W_up (H x r_a) becomes (I - V V^T) W_up. A zero B (LoRA's init) has no column space:
the projection then changes nothing.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules.module import _IncompatibleKeys
from transformers import TrainerCallback

from steering.architectures import decoder_layers, get_architecture
from steering.config import SteeringConfig
from steering.model import SteeredModel, load_prefixed


class JointModel(nn.Module):
    """LoRA (PEFT, injected into ``base``) under post-block steering; both trainable."""

    def __init__(
        self,
        base: nn.Module,
        steering: SteeringConfig,
        lora_rank: int = 8,
        trainable_dtype: torch.dtype | None = None,
    ) -> None:
        """PEFT keeps LoRA weights in float32 under a bfloat16 base (its default);
        ``trainable_dtype`` float32 does the same for the steering adapters."""
        super().__init__()
        from steering.methods.lora import add_lora

        self.lora = add_lora(base, lora_rank)
        # Steering hooks on the same HF model the LoRA layers were injected into.
        self.steered = SteeredModel(self.lora.get_base_model(), steering, trainable_dtype)
        for name, p in self.lora.named_parameters():  # SteeredModel froze them with the base
            if "lora_" in name:
                p.requires_grad_(True)

    @property
    def config(self):
        return self.steered.config

    @property
    def generation_config(self):
        return self.steered.generation_config

    def forward(self, **kwargs):
        return self.steered(**kwargs)

    def generate(self, **kwargs):
        return self.steered.generate(**kwargs)

    def _mlp_out(self, layer: nn.Module) -> nn.Module:
        """The layer's MLP output projection (Llama's down_proj), which must carry LoRA."""
        arch = get_architecture(self.lora.get_base_model())
        module = layer
        for part in arch.mlp_out.split("."):
            module = getattr(module, part, None)
        if module is None or not hasattr(module, "lora_B"):
            raise ValueError(
                f"joint orthogonality needs LoRA on the MLP output projection {arch.mlp_out!r} "
                f"of {type(layer).__name__}; set Architecture.mlp_out in steering/architectures.py"
            )
        return module

    # --- trainable-only state dict (Trainer checkpoints: LoRA and adapter tensors, no base) ---
    def state_dict(self, *, destination=None, prefix: str = "", keep_vars: bool = False):
        out = {} if destination is None else destination
        for name, t in self.lora.state_dict(keep_vars=keep_vars).items():
            if "lora_" in name:
                out[f"{prefix}lora.{name}"] = t
        return self.steered.state_dict(
            destination=out, prefix=f"{prefix}steered.", keep_vars=keep_vars
        )

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        lora = {k[5:]: v for k, v in state_dict.items() if k.startswith("lora.")}
        rest = {k: v for k, v in state_dict.items() if not k.startswith("lora.")}
        expected = {k for k in self.lora.state_dict() if "lora_" in k}
        missing = sorted(expected - lora.keys())
        unexpected = sorted(lora.keys() - expected)
        if strict and (missing or unexpected):
            raise RuntimeError(f"LoRA keys: missing {missing[:5]}, unexpected {unexpected[:5]}")
        self.lora.load_state_dict({k: lora[k] for k in expected & lora.keys()}, strict=False)
        result = load_prefixed(self.steered, "steered.", rest, strict, assign)
        return _IncompatibleKeys(
            ["lora." + k for k in missing] + result.missing_keys,
            ["lora." + k for k in unexpected] + result.unexpected_keys,
        )

    def lora_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.lora.named_parameters() if "lora_" in n and p.requires_grad]

    def adapter_parameters(self) -> list[nn.Parameter]:
        return list(self.steered.adapters.parameters())

    @torch.no_grad()
    def project(self, side: str = "input") -> int:
        """Apply the orthogonality constraint to every adapter; returns how many changed."""
        if side not in ("input", "output"):
            raise ValueError(f"orthogonal side {side!r} is invalid; choose 'input' or 'output'")
        changed = 0
        layers = decoder_layers(self.lora.get_base_model())
        for key, adapter in self.steered.adapters.items():
            if not hasattr(adapter, "down"):
                continue  # a steering vector has no W_down to project
            layer = layers[int(key.removeprefix("layer").split("_")[0])]
            b = self._mlp_out(layer).lora_B["default"].weight.float()  # (H, r)
            u, s, _ = torch.linalg.svd(b, full_matrices=False)
            if float(s.max()) == 0.0:
                continue  # B = 0 (LoRA's init): no column space to avoid
            v = u[:, s > 1e-6 * s.max()]  # (H, k) orthonormal basis of col(B)
            if side == "input":
                w = adapter.down.weight  # (r_a, H)
                w.sub_(((w.float() @ v) @ v.T).to(w.dtype))
            else:
                w = adapter.up.weight  # (H, r_a)
                w.sub_((v @ (v.T @ w.float())).to(w.dtype))
            changed += 1
        return changed


class OrthogonalityCallback(TrainerCallback):
    """Applies ``JointModel.project`` at the configured frequency: ``step``, ``epoch``,
    ``init`` or every N optimizer steps (an int; ``method.parse_frequency`` reads a flag)."""

    def __init__(self, model: JointModel, frequency: str | int, side: str = "input") -> None:
        self.model, self.frequency, self.side = model, frequency, side
        self.applied_at: list[int] = []  # optimizer steps after which it ran (0 = before training)

    def _apply(self, step: int) -> None:
        self.model.project(self.side)
        self.applied_at.append(step)

    def on_train_begin(self, args, state, control, **kwargs):
        if self.frequency == "init":
            self._apply(0)

    def on_step_end(self, args, state, control, **kwargs):
        f = self.frequency
        if f == "step" or (isinstance(f, int) and state.global_step % f == 0):
            self._apply(state.global_step)

    def on_epoch_end(self, args, state, control, **kwargs):
        if self.frequency == "epoch":
            self._apply(state.global_step)
