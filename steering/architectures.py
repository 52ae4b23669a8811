"""Architecture registry: where the decoder layers and the steering sites live in each model.

One row per Hugging Face ``config.model_type``. A row names
- ``layers``: candidate dotted paths from the top-level model to its list of decoder layers
  (several because transformers 4.x and 5.x nest some models differently; the first that
  exists wins);
- ``sites``: for each steering site, the dotted path *inside one decoder layer* of the module
  whose output is steered. ``block`` is always the decoder layer itself. ``attn`` / ``mlp`` are
  the modules whose outputs are each branch's contribution right before its residual add (for
  Gemma-2/3 that is the post-branch norm, for Phi-3 / GPT-NeoX the residual dropout).
  ``official_attn`` is where the official code hooked its "attn" adapter: the output of
  ``post_attention_layernorm`` or the architecture's equivalent (the norm in front of the MLP).

To support a new architecture, add one row to ``ARCHITECTURES`` and a tiny-model case to
``steering/loading/tiny.py`` (the tests then cover it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch only where a model is walked: the registry itself is plain data
    from torch import nn

LLAMA_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class Architecture:
    layers: tuple[str, ...]
    sites: dict[str, str] = field(default_factory=dict)
    # Gemma runs of the protocol: prompts through the chat template, eager attention
    gemma: bool = False
    # the projections LoRA adapts (PROTOCOL.md section 5's seven, in this family's names)
    lora_targets: tuple[str, ...] = LLAMA_LORA_TARGETS
    # the MLP output projection inside a layer (Llama's down_proj): joint orthogonality
    mlp_out: str = "mlp.down_proj"


_LLAMA_LIKE = Architecture(
    layers=("model.layers",),
    sites={"attn": "self_attn", "mlp": "mlp", "official_attn": "post_attention_layernorm"},
)
_GEMMA_SANDWICH = {  # Gemma-2/3 normalise each branch output before the residual add
    "attn": "post_attention_layernorm",
    "mlp": "post_feedforward_layernorm",
    "official_attn": "post_attention_layernorm",
}

ARCHITECTURES: dict[str, Architecture] = {
    "llama": _LLAMA_LIKE,
    "mistral": _LLAMA_LIKE,
    "qwen2": _LLAMA_LIKE,
    "qwen3": _LLAMA_LIKE,
    "gemma": Architecture(layers=_LLAMA_LIKE.layers, sites=_LLAMA_LIKE.sites, gemma=True),
    "gemma2": Architecture(layers=("model.layers",), sites=_GEMMA_SANDWICH, gemma=True),
    "gemma3_text": Architecture(layers=("model.layers",), sites=_GEMMA_SANDWICH, gemma=True),
    # Gemma-3 multimodal wrapper: steer its language model (5.x path first, then 4.x paths)
    "gemma3": Architecture(
        layers=(
            "model.language_model.layers",
            "language_model.model.layers",
            "language_model.layers",
        ),
        sites=_GEMMA_SANDWICH,
        gemma=True,
    ),
    "phi3": Architecture(
        layers=("model.layers",),
        sites={
            "attn": "resid_attn_dropout",
            "mlp": "resid_mlp_dropout",
            "official_attn": "post_attention_layernorm",
        },
        lora_targets=("qkv_proj", "o_proj", "gate_up_proj", "down_proj"),  # fused projections
    ),
    "gpt2": Architecture(
        layers=("transformer.h",),
        sites={"attn": "attn", "mlp": "mlp", "official_attn": "ln_2"},
        lora_targets=("c_attn", "c_proj", "c_fc"),  # c_proj: both the attention and MLP outputs
        mlp_out="mlp.c_proj",
    ),
    "gpt_neox": Architecture(
        layers=("gpt_neox.layers",),
        sites={
            "attn": "post_attention_dropout",
            "mlp": "post_mlp_dropout",
            "official_attn": "post_attention_layernorm",
        },
        lora_targets=("query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"),
        mlp_out="mlp.dense_4h_to_h",
    ),
    "opt": Architecture(
        layers=("model.decoder.layers",),
        sites={"attn": "self_attn", "mlp": "fc2", "official_attn": "final_layer_norm"},
        lora_targets=("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"),
        mlp_out="fc2",
    ),
}


def uses_chat_template(model_type: str) -> bool:
    """Whether the protocol sends prompts through the chat template (Gemma models)."""
    arch = ARCHITECTURES.get(model_type)
    return bool(arch and arch.gemma)


def _get(root: nn.Module, path: str) -> nn.Module | None:
    module = root
    for part in path.split(".") if path else ():
        module = getattr(module, part, None)
        if module is None:
            return None
    return module


def get_architecture(model: nn.Module) -> Architecture:
    """The registry row for ``model`` (an HF model), or a ValueError saying how to add one."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in ARCHITECTURES:
        raise ValueError(
            f"unsupported architecture: model_type={model_type!r} ({type(model).__name__}). "
            f"Supported model types: {sorted(ARCHITECTURES)}. To add it, add one entry "
            f"ARCHITECTURES[{model_type!r}] = Architecture(layers=(<path to the decoder-layer "
            f"list>,), sites={{'attn': ..., 'mlp': ..., 'official_attn': ...}}) in "
            f"steering/architectures.py"
        )
    return ARCHITECTURES[model_type]


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The model's decoder layers, in order."""
    arch = get_architecture(model)
    for path in arch.layers:
        layers = _get(model, path)
        from torch import nn

        if isinstance(layers, nn.ModuleList):
            return layers
    raise ValueError(
        f"{type(model).__name__} (model_type={model.config.model_type!r}) has none of the "
        f"decoder-layer paths {list(arch.layers)}; fix its row in steering/architectures.py"
    )


def site_module(model: nn.Module, layer: nn.Module, site: str) -> nn.Module:
    """The module inside ``layer`` whose output is steered for ``site``."""
    if site == "block":
        return layer
    arch = get_architecture(model)
    path = arch.sites.get(site)
    module = _get(layer, path) if path else None
    if module is None:
        raise ValueError(
            f"site {site!r} is not available for model_type={model.config.model_type!r}: "
            f"its layer {type(layer).__name__} has no submodule {path!r}; available sites: "
            f"{['block', *sorted(arch.sites)]}"
        )
    return module


def text_config(model: nn.Module):
    """The config holding the language model's sizes (multimodal wrappers nest it)."""
    cfg = model.config
    return cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
