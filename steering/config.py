"""SteeringConfig: what to attach to a frozen model, validated on construction.

A config describes the steering modules only (never the training run): their kind, rank,
nonlinearity, scale, where they attach (sites), on which layers and at which token positions.
It round-trips through a plain dict / JSON so checkpoints are self-describing.

Post-block adapter (kind ``adapter``), on the output h (B, S, H) of each chosen site:

    h' = h + alpha * W_up act(W_down h)        W_down: H -> r, W_up: r -> H, no biases

Steering vector (kind ``vector``):   h' = h + alpha * v,   v in R^H.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any

KINDS = ("adapter", "vector")
ACTIVATIONS = ("silu", "relu", "gelu", "tanh", None)  # None = identity (the linear variant)
SITES = ("block", "attn", "mlp", "official_attn")
POSITIONS = ("all", "last")


def _fail(field: str, value: Any, allowed: str) -> None:
    raise ValueError(f"SteeringConfig.{field}={value!r} is invalid: {allowed}")


@dataclass(frozen=True)
class SteeringConfig:
    """The paper's default, ``SteeringConfig()``: post-block, rank 8, SiLU, all tokens and layers.

    Attributes:
        kind: ``"adapter"`` (low-rank adapter) or ``"vector"`` (one trainable vector per site).
        rank: r, the adapter's bottleneck width (ignored by ``vector``).
        activation: ``"silu" | "relu" | "gelu" | "tanh"`` or ``None`` for identity (linear).
        alpha: scale of the steering term.
        sites: where in each decoder layer to steer: ``("block",)`` = the layer's output;
            ``("attn", "mlp")`` = each branch's output before its residual add;
            ``("official_attn", "mlp")`` = the official code's placement (the output of
            ``post_attention_layernorm``). Any non-empty set of these names is allowed.
        layers: ``"all"`` or a tuple of layer indices.
        positions: ``"all"`` tokens (prompt and generated) or only the ``"last"`` one.
    """

    kind: str = "adapter"
    rank: int = 8
    activation: str | None = "silu"
    alpha: float = 1.0
    sites: tuple[str, ...] = ("block",)
    layers: str | tuple[int, ...] = "all"
    positions: str = "all"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            _fail("kind", self.kind, f"choose one of {list(KINDS)}")
        if isinstance(self.rank, bool) or not isinstance(self.rank, int) or self.rank < 1:
            _fail("rank", self.rank, "must be an integer >= 1")
        if self.activation not in ACTIVATIONS:
            _fail(
                "activation", self.activation, f"choose one of {list(ACTIVATIONS)} (None = linear)"
            )
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)):
            _fail("alpha", self.alpha, "must be a finite number")
        if self.alpha != self.alpha or self.alpha in (float("inf"), float("-inf")):
            _fail("alpha", self.alpha, "must be a finite number")
        object.__setattr__(self, "alpha", float(self.alpha))
        object.__setattr__(self, "sites", self._checked_sites(self.sites))
        object.__setattr__(self, "layers", self._checked_layers(self.layers))
        if self.positions not in POSITIONS:
            _fail("positions", self.positions, f"choose one of {list(POSITIONS)}")

    @staticmethod
    def _checked_sites(sites: Any) -> tuple[str, ...]:
        if isinstance(sites, str):
            sites = (sites,)
        if not isinstance(sites, (list, tuple)) or not sites:
            _fail("sites", sites, f"must be a non-empty list drawn from {list(SITES)}")
        unknown = [s for s in sites if s not in SITES]
        if unknown:
            _fail("sites", sites, f"unknown site(s) {unknown}; choose from {list(SITES)}")
        if len(set(sites)) != len(sites):
            _fail("sites", sites, "must not repeat a site")
        return tuple(s for s in SITES if s in sites)  # canonical order

    @staticmethod
    def _checked_layers(layers: Any) -> str | tuple[int, ...]:
        if layers == "all":
            return "all"
        if isinstance(layers, str) or not isinstance(layers, (list, tuple)) or not layers:
            _fail("layers", layers, "must be 'all' or a non-empty list of layer indices")
        if any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in layers):
            _fail("layers", layers, "layer indices must be integers >= 0")
        if len(set(layers)) != len(layers):
            _fail("layers", layers, "must not repeat a layer")
        return tuple(sorted(layers))

    def layer_indices(self, num_layers: int) -> tuple[int, ...]:
        """The concrete layer indices for a model with ``num_layers`` decoder layers."""
        if self.layers == "all":
            return tuple(range(num_layers))
        too_big = [i for i in self.layers if i >= num_layers]
        if too_big:
            raise ValueError(
                f"SteeringConfig.layers={list(self.layers)} names layer(s) {too_big}, "
                f"but the model has {num_layers} decoder layers (0..{num_layers - 1})"
            )
        return self.layers

    def variant_name(self) -> str:
        """The run name the official code gives this steering, extended so no two differ only
        in a setting it did not name: ``adapter_all_nonlinear_silu``, ``adapter_all_linear``,
        ``fixedvec_all``, ``..._submodules``; then ``_official`` (official_attn site),
        ``_r{rank}`` (rank != 8), ``_alpha{alpha}`` (alpha != 1), ``_layers{i-j-...}``."""
        if self.kind == "vector":
            name = f"fixedvec_{self.positions}"
        else:
            act = "linear" if self.activation is None else f"nonlinear_{self.activation}"
            name = f"adapter_{self.positions}_{act}"
        if self.sites == ("attn", "mlp"):
            name += "_submodules"
        elif self.sites == ("mlp", "official_attn"):
            name += "_submodules_official"
        elif self.sites != ("block",):
            name += "_sites-" + "-".join(self.sites)
        if self.kind == "adapter" and self.rank != 8:
            name += f"_r{self.rank}"
        if self.alpha != 1.0:
            name += f"_alpha{self.alpha:g}"
        if self.layers != "all":
            name += "_layers" + "-".join(map(str, self.layers))
        return name

    # --- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["sites"] = list(self.sites)
        if self.layers != "all":
            d["layers"] = list(self.layers)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SteeringConfig:
        if not isinstance(d, dict):
            raise ValueError(f"a steering config must be a JSON object, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(
                f"unknown SteeringConfig field(s) {unknown}; valid fields are {sorted(known)}"
            )
        d = dict(d)
        for key in ("sites", "layers"):
            if isinstance(d.get(key), list):
                d[key] = tuple(d[key])
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SteeringConfig:
        return cls.from_dict(json.loads(text))
