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

from steering.runtime.errors import ModelNotFound

DTYPES = ("float32", "bfloat16", "float16")  # torch's names (torch is imported when loading)

if TYPE_CHECKING:
    import torch


class RemoteCodeRefused(ValueError):
    """The model needs Python code of its own (``auto_map``), which is never run here."""


def pick_device(device: str | None = None) -> torch.device:
    """``device``, else CUDA when present, else CPU; under torchrun a bare ``cuda`` (or none)
    is this process's GPU, ``cuda:<LOCAL_RANK>`` (``device_name`` has the rules)."""
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    local_rank = os.environ.get("LOCAL_RANK")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return torch.device(device_name(device, local_rank, gpus, world))


def device_name(device: str | None, local_rank: str | None, gpus: int, world: int = 1) -> str:
    """The device one process computes on, from ``--device``, torchrun's ``LOCAL_RANK`` and
    ``WORLD_SIZE`` and the number of visible GPUs (no torch here: the rules are testable on a
    machine without one).

    - none: ``cuda:<LOCAL_RANK>`` (``cuda:0`` outside torchrun) when a GPU is visible, else CPU;
    - ``cuda``: the same GPU, and an error when none is visible (no silent CPU run);
    - ``cuda:<k>``: GPU k; under torchrun with several processes only each one's own (all
      processes on one GPU would fail in NCCL, far from the cause);
    - anything else (``cpu``, ``mps``): as given.
    """
    rank = int(local_rank) if local_rank not in (None, "") else None
    if device is None and gpus == 0:
        return "cpu"
    if device in (None, "cuda"):
        if gpus == 0:
            raise ValueError(
                "--device cuda, but no CUDA GPU is visible to this process (check "
                f"nvidia-smi, CUDA_VISIBLE_DEVICES={_visible()}, and that torch is a CUDA "
                "build); use --device cpu to train on the CPU"
            )
        index = rank or 0
        if index >= gpus:
            raise ValueError(
                f"this is torchrun's process LOCAL_RANK={index}, and {gpus} GPU(s) are visible "
                f"(CUDA_VISIBLE_DEVICES={_visible()}): start one process per GPU "
                f"(--nproc-per-node {gpus}, or gpus_per_train in the config), or use --device "
                "cpu for every process"
            )
        return f"cuda:{index}"
    if device.startswith("cuda:"):
        index = device.removeprefix("cuda:")
        if not index.isdigit():
            raise ValueError(f"--device {device}: give cuda, cuda:<index> or cpu")
        if rank is not None and world > 1 and int(index) != rank:
            raise ValueError(
                f"--device {device} under torchrun puts every process on one GPU; give "
                "--device cuda, and each process takes its own (cuda:<LOCAL_RANK>)"
            )
        if int(index) >= gpus:
            raise ValueError(
                f"--device {device}, and {gpus} GPU(s) are visible to this process "
                f"(CUDA_VISIBLE_DEVICES={_visible()}); GPUs are numbered from 0 among the "
                "visible ones"
            )
    return device


def _visible() -> str:
    """``CUDA_VISIBLE_DEVICES`` as the messages show it: unset, empty or its value."""
    value = os.environ.get("CUDA_VISIBLE_DEVICES")
    return "(unset)" if value is None else repr(value)


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
    offload_folder: str | os.PathLike | None = None,
):
    """The frozen-to-be base model in eval mode on ``device``; Gemma with eager attention.

    ``device_map`` ("auto", ...) instead spreads the layers over all visible GPUs, then CPU,
    then disk, with accelerate, for models larger than one GPU; adapters run where their
    layers do (``steering.model.layer_dtype_device``). Disk-offloaded weights are read where
    they lie in the model's safetensors files; weights that must be written first (a ``.bin``
    checkpoint, or weights converted on loading) go to ``offload_folder``, without which
    transformers refuses such a map."""
    import torch
    from transformers import AutoModelForCausalLM

    from steering.architectures import ARCHITECTURES

    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose one of {list(DTYPES)}")
    if device_map is not None and device_map not in DEVICE_MAPS:
        raise ValueError(f"unknown --device-map {device_map!r}; choose one of {list(DEVICE_MAPS)}")
    if device_map is not None and device is not None:
        raise ValueError("give --device or --device-map, not both")
    if offload_folder is not None and device_map is None:
        raise ValueError("--offload-folder is used with --device-map only")
    try:
        model_type = _model_type(model_name)
    except (OSError, ValueError) as e:
        raise _load_error(model_name, e) from e
    kwargs = {"dtype": getattr(torch, dtype), "trust_remote_code": False}
    arch = ARCHITECTURES.get(model_type)
    if arch is not None and arch.gemma:
        kwargs["attn_implementation"] = "eager"
    if device_map is not None:
        if offload_folder is not None:
            kwargs["offload_folder"] = str(offload_folder)
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
