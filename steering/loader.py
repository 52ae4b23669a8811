"""Loading a base model and its tokenizer by hub id or local directory, as the protocol says.

Gemma models get ``attn_implementation="eager"``; the tokenizer pads with EOS when it has no
pad token; the device is CUDA when present, else CPU, unless the caller says otherwise. Remote
code is never trusted. A name that is neither a local directory nor reachable on the hub fails
at once with a message saying so (set HF_HUB_OFFLINE=1 to avoid the hub's ~47 s retries).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class ModelNotFound(ValueError):
    """The model name is neither a local model directory nor available from the hub."""


def pick_device(device: str | None = None) -> torch.device:
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def model_short_name(model_name: str) -> str:
    """The last path component: ``meta-llama/Meta-Llama-3-8B`` -> ``Meta-Llama-3-8B``."""
    return Path(model_name.rstrip("/")).name


def _model_type(model_name: str) -> str:
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(model_name).model_type


def load_tokenizer(model_name: str):
    from transformers import AutoTokenizer

    from steering.data import ensure_pad_token

    try:
        tokenizer = AutoTokenizer.from_pretrained(model_name)
    except (OSError, ValueError) as e:
        raise ModelNotFound(_not_found(model_name, e)) from e
    return ensure_pad_token(tokenizer)


def load_base_model(model_name: str, dtype: str = "float32", device: str | None = None):
    """The frozen-to-be base model in eval mode on ``device``; Gemma with eager attention."""
    from transformers import AutoModelForCausalLM

    from steering.architectures import ARCHITECTURES

    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose one of {list(DTYPES)}")
    try:
        model_type = _model_type(model_name)
    except (OSError, ValueError) as e:
        raise ModelNotFound(_not_found(model_name, e)) from e
    kwargs = {"dtype": DTYPES[dtype]}
    arch = ARCHITECTURES.get(model_type)
    if arch is not None and arch.gemma:
        kwargs["attn_implementation"] = "eager"
    model = AutoModelForCausalLM.from_pretrained(model_name, **kwargs)
    return model.to(pick_device(device)).eval()


def _not_found(model_name: str, error: Exception) -> str:
    local = Path(model_name)
    if local.exists():
        return f"{model_name} exists but is not a Hugging Face model directory: {error}"
    offline = os.environ.get("HF_HUB_OFFLINE") not in (None, "", "0")
    hub = "the hub is disabled (HF_HUB_OFFLINE=1)" if offline else "the hub could not be reached"
    return (
        f"model {model_name!r} is not a local directory and {hub} (or it has no such model). "
        f"Pass a local model directory; for a tiny offline one run: python "
        f"scripts/make_tiny_model.py --arch llama --out results/models/tiny-llama"
    )
