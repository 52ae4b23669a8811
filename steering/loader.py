"""Loading a base model and its tokenizer by hub id or local directory, as the protocol says.

Gemma models get ``attn_implementation="eager"``; the tokenizer pads with EOS when it has no
pad token; the device is CUDA when present, else CPU, unless the caller says otherwise. Remote
code is never trusted: a model that needs it is refused with a clear error, never prompted
for. A name that is neither a local directory nor reachable on the hub fails at once with a
message saying so (set HF_HUB_OFFLINE=1 to avoid the hub's ~47 s retries).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from steering.errors import ModelNotFound

DTYPES = ("float32", "bfloat16", "float16")  # torch's names (torch is imported when loading)

if TYPE_CHECKING:
    import torch


class RemoteCodeRefused(ValueError):
    """The model needs Python code of its own (``auto_map``), which is never run here."""


def pick_device(device: str | None = None) -> torch.device:
    """``device``, else CUDA when present (under torchrun: this process's GPU), else CPU."""
    import torch

    if device:
        return torch.device(device)
    if not torch.cuda.is_available():
        return torch.device("cpu")
    local_rank = os.environ.get("LOCAL_RANK")
    return torch.device(f"cuda:{local_rank}" if local_rank is not None else "cuda")


def model_short_name(model_name: str) -> str:
    """The last path component: ``meta-llama/Meta-Llama-3-8B`` -> ``Meta-Llama-3-8B``."""
    return Path(model_name.rstrip("/")).name


def _model_type(model_name: str) -> str:
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(model_name, trust_remote_code=False).model_type


def load_tokenizer(model_name: str):
    from transformers import AutoTokenizer

    from steering.data import ensure_pad_token

    try:
        # False, not the default None: None asks on a terminal whether to run the code.
        tokenizer = AutoTokenizer.from_pretrained(model_name, trust_remote_code=False)
    except (OSError, ValueError) as e:
        raise _load_error(model_name, e) from e
    return ensure_pad_token(tokenizer)


def load_model_type(model_name: str) -> str | None:
    """The model's ``model_type`` from its config alone (no weights), or None when the
    name has no readable config (a tokenizer-only directory, say)."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(model_name, trust_remote_code=False).model_type
    except (OSError, ValueError):
        return None


DEVICE_MAPS = ("auto", "balanced", "balanced_low_0", "sequential")


def load_base_model(
    model_name: str,
    dtype: str = "float32",
    device: str | None = None,
    device_map: str | None = None,
):
    """The frozen-to-be base model in eval mode on ``device``; Gemma with eager attention.

    ``device_map`` ("auto", ...) instead spreads the layers over all visible GPUs (then CPU)
    with accelerate, for models larger than one GPU; adapters follow their layers' devices."""
    import torch
    from transformers import AutoModelForCausalLM

    from steering.architectures import ARCHITECTURES

    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose one of {list(DTYPES)}")
    if device_map is not None and device_map not in DEVICE_MAPS:
        raise ValueError(f"unknown --device-map {device_map!r}; choose one of {list(DEVICE_MAPS)}")
    if device_map is not None and device is not None:
        raise ValueError("give --device or --device-map, not both")
    try:
        model_type = _model_type(model_name)
    except (OSError, ValueError) as e:
        raise _load_error(model_name, e) from e
    kwargs = {"dtype": getattr(torch, dtype), "trust_remote_code": False}
    arch = ARCHITECTURES.get(model_type)
    if arch is not None and arch.gemma:
        kwargs["attn_implementation"] = "eager"
    if device_map is not None:
        return AutoModelForCausalLM.from_pretrained(
            model_name, device_map=device_map, **kwargs
        ).eval()
    model = AutoModelForCausalLM.from_pretrained(model_name, **kwargs)
    return model.to(pick_device(device)).eval()


def _load_error(model_name: str, error: Exception) -> ValueError:
    """What to raise when transformers cannot load ``model_name``: remote code, a directory
    that is not a model, or a name found nowhere."""
    if "trust_remote_code" in str(error):
        return RemoteCodeRefused(
            f"model {model_name!r} ships Python code of its own (auto_map in its config.json), "
            "and this package never runs code that comes with a model (trust_remote_code is "
            "off); use a model whose architecture transformers implements"
        )
    if Path(model_name).exists():
        return ModelNotFound(
            f"{model_name} exists but is not a Hugging Face model directory: {error}"
        )
    offline = os.environ.get("HF_HUB_OFFLINE") not in (None, "", "0")
    hub = "the hub is disabled (HF_HUB_OFFLINE=1)" if offline else "the hub could not be reached"
    return ModelNotFound(
        f"model {model_name!r} is not a local directory and {hub} (or it has no such model). "
        f"Pass a local model directory; for a tiny offline one run: python "
        f"scripts/make_tiny_model.py --arch llama --out results/models/tiny-llama"
    )
