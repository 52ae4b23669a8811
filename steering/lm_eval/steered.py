"""Export of a steering-vector checkpoint to lm-eval's ``steered`` model format, so that its
users get the numbers ``SteeringLM`` gets (no lm-eval import).

lm-eval's ``steered`` model (``lm_eval/models/hf_steered.py``) reads a ``.pt`` file mapping
a hookpoint (a module's name under the Hugging Face model's ``base_model``, e.g.
``layers.3`` for a Llama decoder block) to ``{"steering_vector": v (H,),
"steering_coefficient": c, "action": "add", "bias": None, "head_index": None}``, and adds
c v to that module's output at every position. A checkpoint of ``kind: vector``
(``--no-adapter``) steering all positions is exactly that, with v = delta, c = alpha, one
entry per (layer, site). Low-rank adapters depend on their input and last-token steering on
the position, which that format cannot say: both are refused, pointing to ``SteeringLM``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from steering.architectures import decoder_layers, site_module
from steering.runtime.io import atomic_path


def hookpoints(steered) -> dict[str, str]:
    """Adapter key (``layer3_block``) -> the steered module's name under the HF model's
    ``base_model``, as lm-eval's ``steered`` model looks modules up."""
    hf = steered.base_model
    names = {id(m): n for n, m in hf.base_model.named_modules()}
    layers = decoder_layers(hf)
    out = {}
    for key in steered.adapters:
        layer, site = key.removeprefix("layer").split("_", 1)
        module = site_module(hf, layers[int(layer)], site)
        if id(module) not in names:
            raise ValueError(f"{key}: its module is not under the model's base_model")
        out[key] = names[id(module)]
    return out


def steer_config(steered) -> dict[str, dict]:
    """The ``steered`` model's config of a loaded ``SteeredModel`` with steering vectors."""
    config = steered.steering_config
    if config.kind != "vector":
        raise ValueError(
            "lm-eval's steered model adds fixed vectors; this checkpoint's low-rank adapters "
            "depend on their input: evaluate it with --model steering (SteeringLM)"
        )
    if config.positions != "all":
        raise ValueError(
            "lm-eval's steered model adds its vectors at every position; this checkpoint "
            "steers the last token only: evaluate it with --model steering (SteeringLM)"
        )
    points = hookpoints(steered)
    out = {}
    for key, module in steered.adapters.items():
        vector: nn.Parameter = module.delta  # (H,)
        out[points[key]] = {
            "steering_vector": vector.detach().to("cpu", torch.float32).clone(),
            "steering_coefficient": float(config.alpha),
            "action": "add",
            "bias": None,
            "head_index": None,
        }
    return out


def export(checkpoint: str | Path, out: str | Path, pretrained: str | None = None) -> Path:
    """Write the ``.pt`` file of a vector checkpoint (loaded on its recorded base model, or
    ``pretrained``) to ``out``, atomically."""
    from steering.lm_eval import checkpoints

    out = Path(out)
    if out.suffix not in (".pt", ".pth"):
        raise ValueError(f"{out}: lm-eval's steered model reads a .pt or .pth file")
    loaded = checkpoints.load(str(checkpoint), pretrained, device="cpu")
    if loaded.method != "steering":
        raise ValueError(
            f"{checkpoint} is a {loaded.method} checkpoint; only post-block steering vectors "
            "(--no-adapter) have lm-eval's steered format"
        )
    config = steer_config(loaded.model)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        torch.save(config, tmp)
    return out
