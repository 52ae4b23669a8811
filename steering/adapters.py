"""The steering modules: a low-rank adapter and a steering vector.

Both return the *steering term* d(h) for a hidden state h (..., H); the hook adds it, so the
steered state is h' = h + d(h).

    LowRankAdapter:  d(h) = alpha * W_up act(W_down h)     W_down (r, H), W_up (H, r), no biases
    SteeringVector:  d(h) = alpha * v                      v (H,)

Initialisation (PROTOCOL.md section 1): W_down = kaiming_uniform(a=sqrt(5)) scaled by 1e-3,
W_up = 0, v = 0, so a fresh module is an exact no-op. Parameters take the base model's dtype.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

DOWN_INIT_SCALE = 1e-3

# Plain registry: config name -> elementwise function. None is the linear variant.
ACTIVATIONS = {
    "silu": F.silu,
    "relu": F.relu,
    "gelu": F.gelu,  # exact (erf) GELU, as the official nn.GELU()
    "tanh": torch.tanh,
    None: None,
}


class LowRankAdapter(nn.Module):
    """d(h) = alpha * W_up act(W_down h); ``down.weight`` is (r, H), ``up.weight`` is (H, r)."""

    def __init__(
        self,
        hidden_size: int,
        rank: int,
        activation: str | None = "silu",
        alpha: float = 1.0,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"unknown activation {activation!r}; choose one of {list(ACTIVATIONS)}"
            )
        self.activation = activation
        self.alpha = alpha
        self._act = ACTIVATIONS[activation]
        self.down = nn.Linear(hidden_size, rank, bias=False, dtype=dtype, device=device)
        self.up = nn.Linear(rank, hidden_size, bias=False, dtype=dtype, device=device)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            nn.init.kaiming_uniform_(self.down.weight, a=math.sqrt(5))
            self.down.weight.mul_(DOWN_INIT_SCALE)
            nn.init.zeros_(self.up.weight)

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # (..., H) -> (..., H)
        z = self.down(h)  # (..., r)
        if self._act is not None:
            z = self._act(z)
        out = self.up(z)  # (..., H)
        return out if self.alpha == 1.0 else self.alpha * out

    def extra_repr(self) -> str:
        return f"activation={self.activation}, alpha={self.alpha}"


class SteeringVector(nn.Module):
    """d(h) = alpha * v; parameter ``delta`` (H,), initialised to zero."""

    def __init__(
        self,
        hidden_size: int,
        alpha: float = 1.0,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self.alpha = alpha
        self.delta = nn.Parameter(torch.zeros(hidden_size, dtype=dtype, device=device))

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # (..., H) -> (H,), broadcast by the add
        return self.delta if self.alpha == 1.0 else self.alpha * self.delta

    def extra_repr(self) -> str:
        return f"hidden_size={self.delta.shape[0]}, alpha={self.alpha}"
