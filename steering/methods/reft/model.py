"""The LoReFT baseline: a low-rank representation intervention at chosen prompt positions.

At every decoder layer's output h (the block output), on the selected positions only:

    h' = h + R^T (W h + b - R h)         R: (r, H) with orthonormal rows, W: (r, H), b: (r,)

R is kept orthonormal by torch's orthogonal parametrisation. Positions: the last prompt token
(default), or the first n and the last n prompt tokens. The prompt of a training row is its
span before the first supervised label; in generation it is the whole input of the first
(uncached) pass, so later decoding steps, which only extend the cache, are never intervened
on, exactly as in the definition.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn.utils import parametrizations

from steering.architectures import decoder_layers, text_config
from steering.model import in_dtype, layer_dtype_device, load_prefixed
from steering.runtime.io import atomic_path, write_json

WEIGHTS = "reft.safetensors"


class LoReFT(nn.Module):
    """h + R^T (W h + b - R h) for h (..., H)."""

    def __init__(self, hidden: int, rank: int, dtype=None, device=None) -> None:
        super().__init__()
        self.rotate = nn.Linear(hidden, rank, bias=False, dtype=dtype, device=device)
        # rows of R stay orthonormal (the Householder map degenerates under weight decay)
        parametrizations.orthogonal(self.rotate, orthogonal_map="cayley")
        self.learned = nn.Linear(hidden, rank, dtype=dtype, device=device)  # W, b

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # (..., H) -> the intervention term
        r = self.rotate.weight  # (r, H)
        return (self.learned(h) - h @ r.T) @ r


def _padding_mask(mask: torch.Tensor | None, ids: torch.Tensor) -> torch.Tensor:
    """(B, S) ones at the prompt's real tokens. Generation with HF's static cache passes the
    4-D attention mask it built instead of the 2-D one: (B, 1, S, K) over the K cache slots,
    booleans (True: attend) or additive floats (0: attend). The last query row attends to
    every real token of its (left-padded) row, so its first S slots say which are padding."""
    if mask is None:
        return torch.ones_like(ids)
    if mask.dim() == 4:
        row = mask[:, 0, -1, : ids.shape[1]]  # (B, S)
        return (row if row.dtype == torch.bool else row == 0).long()
    return mask


class ReftModel(nn.Module):
    """A frozen base with LoReFT interventions on prompt positions of every layer."""

    def __init__(
        self,
        base: nn.Module,
        rank: int = 8,
        first_n: int = 0,
        last_n: int = 1,
        dtype: torch.dtype | None = None,
    ) -> None:
        """``dtype``: the interventions' (default: their layer's; float32 under bf16 precision,
        computed in float32 and cast back to the stream's dtype)."""
        super().__init__()
        if rank < 1 or first_n < 0 or last_n < 0 or first_n + last_n < 1:
            raise ValueError(
                "ReFT needs rank >= 1 and at least one intervened position (first_n + last_n)"
            )
        self.base_model = base
        self.rank, self.first_n, self.last_n = rank, first_n, last_n
        base.requires_grad_(False)
        hidden = int(text_config(base).hidden_size)
        layers = decoder_layers(base)
        # each where its layer runs, so a model spread over GPUs or offloaded (device_map) works
        placed = [layer_dtype_device(layer) for layer in layers]
        self.interventions = nn.ModuleList(
            LoReFT(hidden, rank, dtype or layer_dtype, device) for layer_dtype, device in placed
        )
        self._mask: torch.Tensor | None = None  # (B, S, 1) positions of the current pass
        self._handles = [base.register_forward_pre_hook(self._select, with_kwargs=True)]
        self._handles += [
            layer.register_forward_hook(self._hook(i)) for i, layer in enumerate(layers)
        ]

    @property
    def config(self):
        return self.base_model.config

    @property
    def generation_config(self):
        return self.base_model.generation_config

    def positions_mask(
        self, attention_mask: torch.Tensor, labels: torch.Tensor | None
    ) -> torch.Tensor:
        """(B, S) booleans: the first n and last n tokens of each row's prompt."""
        b, s = attention_mask.shape
        idx = torch.arange(s, device=attention_mask.device)[None]  # (1, S)
        real = attention_mask.bool()
        start = torch.where(
            real.any(1), real.float().argmax(1), torch.zeros(b, device=real.device)
        ).long()
        if labels is not None:  # the prompt ends at the first supervised label
            supervised = labels != -100
            end = torch.where(
                supervised.any(1), supervised.float().argmax(1), real.sum(1) + start
            ).long()
        else:  # generation: the whole (left-padded) input is the prompt
            end = torch.full((b,), s, device=real.device)
        first = (idx >= start[:, None]) & (idx < (start + self.first_n)[:, None])
        last = (idx >= (end - self.last_n)[:, None]) & (idx < end[:, None])
        return (first | last) & (idx >= start[:, None]) & (idx < end[:, None])

    def _select(self, module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        cache_position = kwargs.get("cache_position")
        past = kwargs.get("past_key_values")
        cached = (cache_position is not None and int(cache_position[0]) > 0) or (
            cache_position is None and past is not None and past.get_seq_length() > 0
        )
        if cached or ids is None:
            self._mask = None  # a decoding step past the prompt: no intervention
            return None
        mask = _padding_mask(kwargs.get("attention_mask"), ids)
        self._mask = self.positions_mask(mask, kwargs.get("labels"))[..., None]
        return None

    def _hook(self, i: int):
        def hook(module, args, output):
            if self._mask is None:
                return None
            h = output[0] if isinstance(output, tuple) else output
            h = h + self._mask.to(h.device, h.dtype) * in_dtype(self.interventions[i], h)
            return (h, *output[1:]) if isinstance(output, tuple) else h

        return hook

    def forward(self, **kwargs):
        return self.base_model(**kwargs)

    def generate(self, **kwargs):
        return self.base_model.generate(**kwargs)

    def num_trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.interventions.parameters() if p.requires_grad)

    def state_dict(self, *, destination=None, prefix: str = "", keep_vars: bool = False):
        out = self.interventions.state_dict(
            destination=destination, prefix=prefix + "interventions.", keep_vars=keep_vars
        )
        if not keep_vars:  # the orthogonal parametrization's base is a transposed view
            for k in [k for k in out if k.startswith(prefix + "interventions.")]:
                out[k] = out[k].contiguous()
        return out

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        return load_prefixed(self.interventions, "interventions.", state_dict, strict, assign)

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        tensors = {
            k: v.detach().cpu().contiguous() for k, v in self.interventions.state_dict().items()
        }
        with atomic_path(path / WEIGHTS) as tmp:
            save_file(tensors, str(tmp))
        write_json(
            path / "reft_config.json",
            {"rank": self.rank, "first_n": self.first_n, "last_n": self.last_n},
        )

    @classmethod
    def load(cls, base: nn.Module, path: str | Path, dtype: torch.dtype | None = None) -> ReftModel:
        import json

        path = Path(path)
        cfg = json.loads((path / "reft_config.json").read_text())
        model = cls(base, cfg["rank"], cfg["first_n"], cfg["last_n"], dtype)
        missing, unexpected = model.interventions.load_state_dict(
            load_file(path / WEIGHTS), strict=True
        )
        return model.eval()
