"""SteeredModel: a frozen Hugging Face causal LM with steering modules hooked after its blocks.

For every chosen layer l and site s, a forward hook on the site's module replaces its output
h (B, S, H) by h + d_{l,s}(h), where d is a LowRankAdapter or a SteeringVector
(``steering/adapters.py``). The hooks fire in every forward, including each cached decoding
step of ``generate``, so steering covers prompt and generated tokens alike.

The wrapper owns only the steering modules: the base is frozen on construction, ``state_dict``
holds adapter tensors only (HF Trainer checkpoints and resumes stay small and work with
tied-embedding models), and ``remove()`` detaches every hook, leaving the base as it was.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.modules.module import _IncompatibleKeys

from steering import checkpoint, last_token
from steering.adapters import LowRankAdapter, SteeringVector
from steering.architectures import decoder_layers, get_architecture, site_module, text_config
from steering.config import SteeringConfig

_PREFIX = "adapters."


def layer_dtype_device(layer: nn.Module) -> tuple[torch.dtype, torch.device]:
    """The dtype of ``layer``'s weights and the device its output is computed on: where a
    module added to that output (an adapter, an intervention) must live.

    A layer that accelerate offloads (a ``device_map`` with "disk" entries, or "cpu" ones
    beside a GPU) keeps its weights on ``meta`` and runs on its hook's execution device, so
    that device comes first; otherwise the first floating weight not on ``meta`` says where.
    The dtype may come from a ``meta`` weight: offloading keeps it."""
    floats = [p for p in layer.parameters() if p.is_floating_point()]
    dtype = floats[0].dtype if floats else torch.get_default_dtype()
    device = _execution_device(layer)
    if device is None:
        real = [p.device for p in floats if p.device.type != "meta"]
        # all on meta without a hook: a model built on meta, whose adapters stay there too
        device = (real or [p.device for p in floats] or [torch.device("cpu")])[0]
    return dtype, device


def _execution_device(module: nn.Module) -> torch.device | None:
    """The execution device of accelerate's hook on ``module`` or, when ``module`` has none
    (a device map that splits it), on the first of its submodules that has one."""
    for m in module.modules():
        hook = getattr(m, "_hf_hook", None)
        if hook is None:
            continue
        # several hooks on one module come as a SequentialHook holding them in ``hooks``
        for h in getattr(hook, "hooks", (hook,)):
            device = getattr(h, "execution_device", None)
            if device is not None:
                return torch.device(device)  # may be a GPU index: torch.device(0) is cuda:0
    return None


def load_prefixed(
    module: nn.Module, prefix: str, state_dict: Mapping[str, Any], strict: bool, assign: bool
) -> _IncompatibleKeys:
    """Load the ``prefix``-ed keys into ``module`` (a wrapper's trainable part); a key outside
    the prefix is an error when ``strict``, else reported as unexpected."""
    ours = {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}
    foreign = [k for k in state_dict if not k.startswith(prefix)]
    if strict and foreign:
        raise RuntimeError(
            f"unexpected non-adapter keys (outside {prefix!r}) in state dict: {foreign[:5]}"
        )
    result = module.load_state_dict(ours, strict=strict, assign=assign)
    return _IncompatibleKeys(
        [prefix + k for k in result.missing_keys],
        [prefix + k for k in result.unexpected_keys] + foreign,
    )


def in_dtype(module: nn.Module, h: torch.Tensor) -> torch.Tensor:
    """``module(h)`` computed in the module's dtype, returned in ``h``'s (a float32 adapter on
    a bfloat16 stream: the steering term is computed in float32, then rounded once)."""
    dtype = next(module.parameters()).dtype
    if dtype == h.dtype:
        return module(h)
    return module(h.to(dtype)).to(h.dtype)


class SteeredModel(nn.Module):
    """Wraps ``base_model`` (frozen by this call) with the steering described by ``config``."""

    def __init__(
        self,
        base_model: nn.Module,
        config: SteeringConfig | None = None,
        trainable_dtype: torch.dtype | None = None,
    ) -> None:
        """``trainable_dtype``: the steering modules' dtype (default: their layer's, as the
        protocol says); under ``--precision bf16`` float32, the adapter then computed in
        float32 and its output cast back to the stream's dtype."""
        super().__init__()
        config = SteeringConfig() if config is None else config
        if not isinstance(config, SteeringConfig):
            raise TypeError(f"config must be a SteeringConfig, got {type(config).__name__}")
        get_architecture(base_model)  # fails early, naming the supported architectures
        layers = decoder_layers(base_model)
        self.steering_config = config
        self.base_model = base_model
        self.num_layers = len(layers)
        self.hidden_size = int(text_config(base_model).hidden_size)
        self.layer_indices = config.layer_indices(self.num_layers)

        # Resolve every target before touching the base, so a bad site changes nothing.
        targets = {
            f"layer{i}_{site}": (site_module(base_model, layers[i], site), layers[i])
            for i in self.layer_indices
            for site in config.sites
        }
        self._requires_grad_before = {n: p.requires_grad for n, p in base_model.named_parameters()}
        base_model.requires_grad_(False)

        self.adapters = nn.ModuleDict()
        for key, (_, layer) in targets.items():
            dtype, device = layer_dtype_device(layer)
            self.adapters[key] = self._new_module(trainable_dtype or dtype, device)
        self._enabled = True
        self._steer_from = 0  # steer sequence positions >= this index (last-token passes)
        self._removed = False
        self._handles = [
            module.register_forward_hook(self._hook(self.adapters[key]))
            for key, (module, _) in targets.items()
        ]

    def _new_module(self, dtype: torch.dtype, device: torch.device) -> nn.Module:
        c = self.steering_config
        if c.kind == "vector":
            return SteeringVector(self.hidden_size, c.alpha, dtype=dtype, device=device)
        return LowRankAdapter(self.hidden_size, c.rank, c.activation, c.alpha, dtype, device)

    def _hook(self, adapter: nn.Module):
        def hook(module: nn.Module, args: Any, output: Any) -> Any:
            if not self._enabled:
                return None
            # transformers 5 returns a Tensor from decoder layers; 4.x (and attention modules)
            # return a tuple whose first element is the hidden state.
            h = output[0] if isinstance(output, tuple) else output  # (B, S, H)
            k = self._steer_from
            if k == 0:
                h = h + in_dtype(adapter, h)
            else:  # only the steered copy of a last-token pass: positions k..S-1
                h = torch.cat([h[:, :k], h[:, k:] + in_dtype(adapter, h[:, k:])], dim=1)
            return (h, *output[1:]) if isinstance(output, tuple) else h

        return hook

    # --- the HF model interface --------------------------------------------------------------
    @property
    def config(self):
        """The base model's HF config (what Trainer and generation utilities look for)."""
        return self.base_model.config

    @property
    def generation_config(self):
        return self.base_model.generation_config

    def _check_attached(self) -> None:
        if self._removed:
            raise RuntimeError("this SteeredModel's hooks were removed; wrap the base model again")

    def forward(self, *args: Any, **kwargs: Any):
        """The base model's forward with steering active (same arguments, same HF outputs).

        With ``positions="last"`` the logits of each position are those of its prefix steered
        at its final token only (``steering/last_token.py``), computed in one pass."""
        self._check_attached()
        if self.steering_config.positions == "last" and self._enabled:
            if args:
                raise TypeError("pass input_ids and the rest as keyword arguments")
            return last_token.packed_forward(self, **kwargs)
        return self.base_model(*args, **kwargs)

    def generate(self, *args: Any, **kwargs: Any):
        """The base model's ``generate`` with steering active on prompt and generated tokens.

        With ``positions="last"``: decoding that steers only the final token at every step,
        with a cache of unsteered states (``input_ids``, ``attention_mask``,
        ``max_new_tokens``, ``eos_token_id``, ``pad_token_id`` or a ``generation_config``),
        greedy, or sampled as HF samples (temperature, top-k, top-p) under ``do_sample``."""
        self._check_attached()
        if self.steering_config.positions == "last" and self._enabled:
            return self._generate_last(*args, **kwargs)
        return self.base_model.generate(*args, **kwargs)

    def _generate_last(self, input_ids=None, attention_mask=None, generation_config=None, **kwargs):
        config = generation_config or self.base_model.generation_config
        sampling = kwargs.get("do_sample", generation_config is not None and config.do_sample)
        if kwargs.get("num_beams", 1) != 1:
            raise ValueError("last-token steering decodes one beam: greedy or sampled")
        return last_token.generate(
            self,
            input_ids,
            attention_mask,
            max_new_tokens=kwargs.get("max_new_tokens", config.max_new_tokens or 20),
            eos_token_id=kwargs.get("eos_token_id", config.eos_token_id),
            pad_token_id=kwargs.get("pad_token_id", config.pad_token_id),
            pick=last_token.sampler(config) if sampling else None,
        )

    @contextlib.contextmanager
    def steering_from(self, index: int) -> Iterator[SteeredModel]:
        """Within the block, hooks steer only sequence positions >= ``index``."""
        previous, self._steer_from = self._steer_from, index
        try:
            yield self
        finally:
            self._steer_from = previous

    @contextlib.contextmanager
    def disabled(self) -> Iterator[SteeredModel]:
        """Temporarily run the plain base model: ``with steered.disabled(): ...``."""
        previous, self._enabled = self._enabled, False
        try:
            yield self
        finally:
            self._enabled = previous

    def remove(self) -> nn.Module:
        """Detach all hooks and restore the base's ``requires_grad`` flags; returns the base."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        for name, p in self.base_model.named_parameters():
            p.requires_grad_(self._requires_grad_before.get(name, p.requires_grad))
        self._removed = True
        return self.base_model

    # --- parameter accounting ------------------------------------------------------------------
    def num_trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.adapters.parameters() if p.requires_grad)

    def num_base_parameters(self) -> int:
        return sum(p.numel() for p in self.base_model.parameters())  # tied weights counted once

    def trainable_share(self) -> float:
        """Trainable steering parameters as a fraction of the base model's parameters."""
        return self.num_trainable_parameters() / self.num_base_parameters()

    def trainable_summary(self) -> str:
        return (
            f"trainable params: {self.num_trainable_parameters():,} || "
            f"base params: {self.num_base_parameters():,} || "
            f"trainable: {100 * self.trainable_share():.4f}%"
        )

    # --- adapter-only state dict -------------------------------------------------------------
    def state_dict(self, *, destination=None, prefix: str = "", keep_vars: bool = False):
        return self.adapters.state_dict(
            destination=destination, prefix=prefix + _PREFIX, keep_vars=keep_vars
        )

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False
    ) -> _IncompatibleKeys:
        return load_prefixed(self.adapters, _PREFIX, state_dict, strict, assign)

    def load_adapter_tensors(self, tensors: Mapping[str, torch.Tensor], source: str) -> None:
        """Strictly copy ``tensors`` (keys as in ``self.adapters.state_dict()``) into the adapters.

        Missing, extra or mis-shaped tensors raise ValueError naming ``source`` and the keys.
        Values are cast to each adapter's dtype and device.
        """
        expected = self.adapters.state_dict()
        missing = sorted(set(expected) - set(tensors))
        extra = sorted(set(tensors) - set(expected))
        wrong = [
            f"{k}: checkpoint {tuple(tensors[k].shape)} vs model {tuple(expected[k].shape)}"
            for k in sorted(set(expected) & set(tensors))
            if tuple(tensors[k].shape) != tuple(expected[k].shape)
        ]
        problems = []
        if missing:
            problems.append(f"missing tensors {missing}")
        if extra:
            problems.append(f"unexpected tensors {extra}")
        if wrong:
            problems.append(f"shape mismatch {wrong}")
        if problems:
            raise ValueError(
                f"{source} does not match this model's adapters: " + "; ".join(problems)
            )
        with torch.no_grad():
            for key, param in expected.items():
                param.copy_(tensors[key])

    # --- checkpoints ---------------------------------------------------------------------------
    def save_pretrained(self, path: str | Path) -> Path:
        """Write the adapter-only checkpoint: ``steering_config.json`` + ``adapter.safetensors``."""
        return checkpoint.save(
            path, self.steering_config, self.adapters.state_dict(), checkpoint.base_info(self)
        )

    @classmethod
    def from_pretrained(
        cls, base_model: nn.Module, path: str | Path, trainable_dtype: torch.dtype | None = None
    ) -> SteeredModel:
        """Rebuild the steering saved at ``path`` on ``base_model``; strict about keys and sizes."""
        config, meta, tensors = checkpoint.load(path)
        checkpoint.check_base(
            meta, len(decoder_layers(base_model)), int(text_config(base_model).hidden_size), path
        )
        model = cls(base_model, config, trainable_dtype)
        model.load_adapter_tensors(tensors, f"checkpoint {path}")
        return model

    @classmethod
    def from_official_checkpoint(
        cls,
        base_model: nn.Module,
        path: str | Path,
        activation: str | None = "silu",
        positions: str = "all",
        alpha: float = 1.0,
        trainable_dtype: torch.dtype | None = None,
    ) -> SteeredModel:
        """Load the steering tensors of a state dict saved by the official code's Trainer.

        Kind, rank, sites and layers are read from the keys and shapes; the activation
        (official default ``silu``; ``None`` for ``--linear``) and positions come from the
        caller because the official checkpoint does not record them.
        """
        found = checkpoint.load_official(path)
        num_layers = len(decoder_layers(base_model))
        hidden = int(text_config(base_model).hidden_size)
        if found.hidden_size != hidden:
            raise ValueError(
                f"official checkpoint {path} was trained on a model with hidden size "
                f"{found.hidden_size}; this base model has hidden size {hidden}"
            )
        layers = "all" if found.layers == tuple(range(num_layers)) else found.layers
        shape = {"rank": found.rank} if found.kind == "adapter" else {}
        config = SteeringConfig(
            kind=found.kind,
            activation=activation,
            alpha=alpha,
            sites=found.sites,
            layers=layers,
            positions=positions,
            **shape,
        )
        model = cls(base_model, config, trainable_dtype)
        model.load_adapter_tensors(found.tensors, f"official checkpoint {path}")
        return model
