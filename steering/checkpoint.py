"""Checkpoint formats: ours (adapter only) and the official code's Trainer state dict.

Ours is a directory:
    steering_config.json   {"format_version", "steering": SteeringConfig, "base_model": {...},
                            "package_version", "git_commit"}
    adapter.safetensors    the adapter tensors only, keys as in ``SteeredModel.adapters``
                           (``layer{i}_{site}.down.weight``, ``.up.weight`` or ``.delta``)

The official format is the full ``state_dict`` of the official wrapper saved by HF Trainer
(``pytorch_model.bin`` or ``model.safetensors``): the base weights plus
``adapters.layer{i}_{block|attn|mlp}.{down|up}.weight`` and ``deltas.layer{i}_{...}``. Only the
steering tensors are read, without executing code (``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import json
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from steering.config import SteeringConfig
from steering.runtime.io import atomic_path, write_json
from steering.runtime.provenance import git_commit, package_version

CONFIG_NAME = "steering_config.json"
WEIGHTS_NAME = "adapter.safetensors"
FORMAT_VERSION = 1


def base_info(model) -> dict[str, Any]:
    """What a checkpoint records about the base model a SteeredModel wraps."""
    cfg = model.base_model.config
    dtypes = {p.dtype for p in model.adapters.parameters()}
    return {
        "name_or_path": getattr(cfg, "_name_or_path", "") or None,
        "revision": getattr(cfg, "_commit_hash", None),
        "model_type": cfg.model_type,
        "hidden_size": model.hidden_size,
        "num_layers": model.num_layers,
        "dtype": str(dtypes.pop()).removeprefix("torch.") if len(dtypes) == 1 else None,
    }


def save(path: str | Path, config: SteeringConfig, tensors: dict, base: dict) -> Path:
    """Write a checkpoint directory; each file is written atomically, the config last."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    with atomic_path(path / WEIGHTS_NAME) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt"})
    write_json(
        path / CONFIG_NAME,
        {
            "format_version": FORMAT_VERSION,
            "steering": config.to_dict(),
            "base_model": base,
            "package_version": package_version(),
            "git_commit": git_commit(),
        },
    )
    return path


def load(path: str | Path) -> tuple[SteeringConfig, dict[str, Any], dict[str, torch.Tensor]]:
    """Read a checkpoint directory -> (config, its JSON metadata, CPU tensors)."""
    path = Path(path)
    cfg_file, weights_file = path / CONFIG_NAME, path / WEIGHTS_NAME
    missing = [f.name for f in (cfg_file, weights_file) if not f.is_file()]
    if missing:
        raise FileNotFoundError(
            f"{path} is not a steering checkpoint: missing {missing} "
            f"(a checkpoint directory holds {CONFIG_NAME} and {WEIGHTS_NAME}; for a "
            f"pytorch_model.bin from the official code use from_official_checkpoint)"
        )
    try:
        meta = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{cfg_file} is not valid JSON: {e}") from e
    if not isinstance(meta, dict) or not {"format_version", "steering", "base_model"} <= set(meta):
        raise ValueError(
            f"{cfg_file} lacks 'format_version', 'steering' or 'base_model'; "
            f"it was not written by SteeredModel.save_pretrained"
        )
    version = meta["format_version"]
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(
            f"{cfg_file} has format_version {version!r}, written by steering "
            f"{meta.get('package_version', '?')}; this steering {package_version()} reads "
            f"format_version <= {FORMAT_VERSION}: upgrade the package"
        )
    try:
        config = SteeringConfig.from_dict(meta["steering"])
    except (TypeError, ValueError) as e:
        raise ValueError(f"{cfg_file}: invalid steering config: {e}") from e
    try:
        tensors = load_file(str(weights_file), device="cpu")
    except (SafetensorError, OSError) as e:
        raise ValueError(f"{weights_file} is not a readable safetensors file: {e}") from e
    return config, meta, tensors


def check_base(meta: dict[str, Any], num_layers: int, hidden_size: int, path: str | Path) -> None:
    """Fail when the checkpoint's base model has other sizes than the one it is loaded on."""
    base = meta["base_model"]
    diffs = [
        f"{key}: checkpoint {base.get(key)} vs base model {ours}"
        for key, ours in (("hidden_size", hidden_size), ("num_layers", num_layers))
        if base.get(key) != ours
    ]
    if diffs:
        raise ValueError(
            f"checkpoint {path} was trained on a different base model "
            f"({base.get('name_or_path')}): " + "; ".join(diffs)
        )


# --- the official format -------------------------------------------------------------------------
_ADAPTER_KEY = re.compile(r"adapters\.layer(\d+)_([a-z]+)\.(down|up)\.weight")
_DELTA_KEY = re.compile(r"deltas\.layer(\d+)_([a-z]+)")
OFFICIAL_SITES = {"block": "block", "attn": "official_attn", "mlp": "mlp"}  # theirs -> ours


@dataclass(frozen=True)
class OfficialSteering:
    """The steering found in an official state dict, in our key naming."""

    kind: str
    rank: int | None
    hidden_size: int
    sites: tuple[str, ...]
    layers: tuple[int, ...]
    tensors: dict[str, torch.Tensor]


def _official_file(path: Path) -> Path:
    if path.is_dir():
        for name in ("model.safetensors", "pytorch_model.bin"):
            if (path / name).is_file():
                return path / name
        raise FileNotFoundError(f"{path} holds neither model.safetensors nor pytorch_model.bin")
    if not path.is_file():
        raise FileNotFoundError(f"official checkpoint {path} does not exist")
    return path


def _read_steering_tensors(file: Path) -> dict[str, torch.Tensor]:
    wanted = ("adapters.", "deltas.")
    if file.suffix == ".safetensors":
        try:
            with safe_open(str(file), framework="pt", device="cpu") as f:
                return {k: f.get_tensor(k) for k in f.keys() if k.startswith(wanted)}
        except (SafetensorError, OSError) as e:
            raise ValueError(f"{file} is not a readable safetensors file: {e}") from e
    state = _torch_load(file)
    if not isinstance(state, dict):
        raise ValueError(f"{file} holds a {type(state).__name__}, not a state dict")
    return {k: v for k, v in state.items() if isinstance(k, str) and k.startswith(wanted)}


def _torch_load(file: Path) -> Any:
    """``torch.load`` that runs no code and turns its many failures into one ValueError."""
    try:
        try:  # mmap keeps a multi-GB base state dict out of memory; weights_only runs no code
            return torch.load(file, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # the legacy (non-zip) format cannot be memory-mapped
            return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"WeightsUnpickler error:\s*(.+?)(?: Please |\n\n|$)", str(e), re.S)
        detail = found.group(1).strip() if found else type(e).__name__
        raise ValueError(
            f"{file} is not a plain state dict of tensors: it is damaged, or holds objects "
            "that only running code could rebuild, and checkpoints are loaded without running "
            f"any (weights_only=True): {detail}"
        ) from e
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise ValueError(f"{file} is not a readable PyTorch checkpoint: {e}") from e


def load_official(path: str | Path) -> OfficialSteering:
    """Read the steering tensors of an official checkpoint and infer kind, rank, sites, layers."""
    file = _official_file(Path(path))
    raw = _read_steering_tensors(file)
    tensors: dict[str, torch.Tensor] = {}
    layers, sites, kinds = set(), set(), set()
    for key, value in raw.items():
        if m := _ADAPTER_KEY.fullmatch(key):
            layer, site, proj = m.groups()
            kinds.add("adapter")
            suffix = f"{proj}.weight"
        elif m := _DELTA_KEY.fullmatch(key):
            layer, site = m.groups()
            kinds.add("vector")
            suffix = "delta"
            value = value.reshape(-1)  # stored as (H,) or broadcastable (1, 1, H)
        else:
            raise ValueError(f"{file}: unrecognised steering key {key!r}")
        if site not in OFFICIAL_SITES:
            raise ValueError(f"{file}: key {key!r} has unknown site {site!r}")
        layers.add(int(layer))
        sites.add(OFFICIAL_SITES[site])
        tensors[f"layer{int(layer)}_{OFFICIAL_SITES[site]}.{suffix}"] = value
    if not kinds:
        raise ValueError(
            f"{file} holds no steering tensors (keys 'adapters.layer<i>_<site>.down.weight' or "
            f"'deltas.layer<i>_<site>'): not a checkpoint of the official steering code"
        )
    if len(kinds) > 1:
        raise ValueError(f"{file} mixes adapters and steering vectors; cannot infer one kind")
    kind = kinds.pop()
    if kind == "adapter":
        ranks = {v.shape[0] for k, v in tensors.items() if k.endswith("down.weight")}
        hiddens = {v.shape[1] for k, v in tensors.items() if k.endswith("down.weight")}
    else:
        ranks, hiddens = {None}, {v.shape[0] for v in tensors.values()}
    if len(ranks) != 1 or len(hiddens) != 1:
        raise ValueError(
            f"{file}: steering tensors disagree on rank {ranks} / hidden size {hiddens}"
        )
    return OfficialSteering(
        kind=kind,
        rank=ranks.pop(),
        hidden_size=hiddens.pop(),
        sites=tuple(sorted(sites)),  # SteeringConfig puts them in canonical order
        layers=tuple(sorted(layers)),
        tensors=tensors,
    )
