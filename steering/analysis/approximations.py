"""What the oracle shifts look like, and the shifts that approximate them (docs/analysis.md).

``OracleStatistics`` accumulates, per layer l and over the real tokens of every row batch,
with D the (tokens, H) matrix of oracle shifts delta_l and X that of the block outputs
B_l(x^F_l) (``steering/analysis/oracle.py``):

    G = D^T D,   X^T X,   X^T D          (H, H) each, float64 on the host
    sum_t delta_t,   sum_t ||d_mlp,t|| / ||delta_t||,   sum_t cos(d_mlp,t, delta_t), ...

From them, without the tokens:

- singular values of D: s_i = sqrt(eig_i(G)); the effective rank at energy e is the least k
  with sum_{i<=k} s_i^2 >= e * sum_i s_i^2; the rank-k truncation of a shift is
  delta V_k V_k^T (V_k: G's top k eigenvectors);
- the fixed vector: the mean shift, v = sum_t delta_t / T;
- the best linear map (no bias, the linear steering form): W = argmin ||X W - D||_F =
  (X^T X)^+ X^T D, and of rank r (reduced-rank regression): W_r = W U_r U_r^T with U_r the top
  r eigenvectors of the fitted values' Gram W^T X^T X W. As a linear steering adapter
  d(h) = W_up W_down h: W_down = (W U_r)^T (r, H), W_up = U_r (H, r).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from steering.analysis.oracle import shifted


@dataclass
class Spectrum:
    singular_values: torch.Tensor  # (H,) descending
    vectors: torch.Tensor  # (H, H) columns: right singular vectors, same order


def effective_rank(singular_values: torch.Tensor, energy: float) -> int:
    """The least k whose top-k singular values hold ``energy`` of sum s_i^2 (0 for D = 0)."""
    e = singular_values.double() ** 2
    total = float(e.sum())
    if total <= 0:
        return 0
    cumulative = torch.cumsum(e, 0) / total
    return int((cumulative < energy - 1e-12).sum()) + 1


def top_eigenvectors(gram: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (clamped at 0) and eigenvectors of a symmetric PSD matrix, descending."""
    values, vectors = torch.linalg.eigh(gram)
    order = torch.argsort(values, descending=True)
    return values[order].clamp_min(0), vectors[:, order]


class OracleStatistics:
    """Per-layer sums over tokens of the oracle shifts (see the module docstring)."""

    def __init__(self, num_layers: int, hidden_size: int) -> None:
        L, H = num_layers, hidden_size
        z = dict(dtype=torch.float64)
        self.hidden_size = H
        self.tokens = [0] * L
        self.sum_delta = torch.zeros(L, H, **z)
        self.gram = torch.zeros(L, H, H, **z)  # D^T D
        self.xtx = torch.zeros(L, H, H, **z)  # X^T X
        self.xty = torch.zeros(L, H, H, **z)  # X^T D
        names = ("mlp_share", "attn_share", "mlp_cosine", "mlp_sq", "attn_sq", "share_tokens")
        self.sums = {n: torch.zeros(L, **z) for n in names}

    def update(
        self,
        layer: int,
        block_out: torch.Tensor,
        delta: torch.Tensor,
        d_attn: torch.Tensor,
        d_mlp: torch.Tensor,
        mask: torch.Tensor,
    ) -> None:
        """Add the real tokens (``mask`` (b, S) true) of one row batch's layer ``layer``."""
        keep = mask.bool()
        x, d = block_out[keep].double().cpu(), delta[keep].double().cpu()  # (T, H)
        a, m = d_attn[keep].double().cpu(), d_mlp[keep].double().cpu()
        self.tokens[layer] += d.shape[0]
        self.sum_delta[layer] += d.sum(0)
        self.gram[layer] += d.T @ d
        self.xtx[layer] += x.T @ x
        self.xty[layer] += x.T @ d
        norm = d.norm(dim=-1)  # (T,)
        moving = norm > 0  # tokens the fine-tune moved: shares of a zero shift are undefined
        s = self.sums
        s["share_tokens"][layer] += int(moving.sum())
        s["mlp_share"][layer] += (m.norm(dim=-1)[moving] / norm[moving]).sum()
        s["attn_share"][layer] += (a.norm(dim=-1)[moving] / norm[moving]).sum()
        cos = torch.nn.functional.cosine_similarity(m[moving], d[moving], dim=-1)
        s["mlp_cosine"][layer] += cos.sum()
        s["mlp_sq"][layer] += (m**2).sum()
        s["attn_sq"][layer] += (a**2).sum()

    @property
    def num_layers(self) -> int:
        return len(self.tokens)

    def spectrum(self, layer: int) -> Spectrum:
        values, vectors = top_eigenvectors(self.gram[layer])
        return Spectrum(values.sqrt(), vectors)

    def mean_shift(self, layer: int) -> torch.Tensor:
        return self.sum_delta[layer] / max(1, self.tokens[layer])  # (H,)

    def least_squares(self, layer: int) -> torch.Tensor:
        """W (H, H) minimising ||X W - D||_F (the minimum-norm one when X^T X is singular)."""
        return torch.linalg.lstsq(self.xtx[layer], self.xty[layer], driver="gelsd").solution

    def linear_map(self, layer: int, rank: int, full: torch.Tensor | None = None):
        """The best rank-``rank`` map as adapter weights: (down (r, H), up (H, r))."""
        w = self.least_squares(layer) if full is None else full
        fitted = w.T @ self.xtx[layer] @ w  # (H, H): Gram of the fitted values X W
        _, u = top_eigenvectors(fitted)
        u_r = u[:, :rank]  # (H, r)
        return (w @ u_r).T.contiguous(), u_r.contiguous()

    def residual_share(self, layer: int, w: torch.Tensor) -> float:
        """||X W - D||^2 / ||D||^2 from the sums (1 - R^2 of the fit; 0 for D = 0)."""
        total = float(torch.trace(self.gram[layer]))
        if total <= 0:
            return 0.0
        rss = total - 2 * float(torch.trace(w.T @ self.xty[layer]))
        rss += float(torch.trace(w.T @ self.xtx[layer] @ w))
        return max(0.0, rss) / total

    def layer_row(self, layer: int) -> dict:
        """One row of layers.csv (see docs/analysis.md for the columns)."""
        s, n = self.sums, max(1.0, float(self.sums["share_tokens"][layer]))
        spectrum = self.spectrum(layer)
        energy = spectrum.singular_values**2
        total = float(energy.sum())
        tokens = max(1, self.tokens[layer])
        w = self.least_squares(layer)
        return {
            "layer": layer,
            "tokens": self.tokens[layer],
            "delta_rms": (total / tokens) ** 0.5,
            "rank90": effective_rank(spectrum.singular_values, 0.90),
            "rank99": effective_rank(spectrum.singular_values, 0.99),
            "top1_energy": float(energy[0]) / total if total > 0 else 0.0,
            "mlp_share": float(s["mlp_share"][layer]) / n,
            "attn_share": float(s["attn_share"][layer]) / n,
            "mlp_cosine": float(s["mlp_cosine"][layer]) / n,
            "mlp_share_frobenius": (float(s["mlp_sq"][layer]) / total) ** 0.5 if total else 0.0,
            "linear_residual": self.residual_share(layer, w),
        }


# --- the approximations, each plugged in after every block of B ---------------------------------
# ``plug(base, deltas)`` is a context manager yielding the model to call: ``deltas`` maps
# layer -> the row batch's oracle shifts (b, S, H) (used by the oracle and its truncations).


@dataclass
class Approximation:
    name: str
    kind: str  # reference | oracle | truncation | vector | linear | trained
    frame: str  # whose embeddings, final norm and head: "base" or "finetuned"
    plug: Callable[[nn.Module, dict[int, torch.Tensor]], contextlib.AbstractContextManager]
    rank: int | None = None
    parameters: int | None = None  # trainable-size equivalent (None: token-dependent)
    checkpoint: str | None = None
    accuracy: float | None = None


@contextlib.contextmanager
def unchanged(base: nn.Module, deltas) -> Iterator[nn.Module]:
    yield base


@contextlib.contextmanager
def steered(base: nn.Module, config, tensors: dict[str, torch.Tensor], source: str):
    """``base`` wrapped by ``SteeredModel`` with ``tensors`` (the steering hooks); unwrapped
    on exit."""
    from steering.model import SteeredModel

    model = SteeredModel(base, config)
    try:
        model.load_adapter_tensors(tensors, source)
        yield model
    finally:
        model.remove()


def oracle_approximation() -> Approximation:
    def plug(base, deltas):
        return shifted(base, lambda layer, h: deltas[layer])

    return Approximation("oracle", "oracle", "finetuned", plug)


def truncations(stats: OracleStatistics, ranks: list[int]) -> list[Approximation]:
    """The oracle truncated to rank k in every layer: delta V_k V_k^T."""
    bases = [stats.spectrum(layer).vectors for layer in range(stats.num_layers)]
    out = []
    for k in ranks:
        tops = [v[:, :k] for v in bases]  # (H, k) each

        def plug(base, deltas, tops=tops):
            cache: dict[int, torch.Tensor] = {}

            def shift(layer, h):
                d = deltas[layer]  # (b, S, H)
                if layer not in cache:
                    cache[layer] = tops[layer].to(d.device, d.dtype)
                v = cache[layer]
                return (d @ v) @ v.T

            return shifted(base, shift)

        out.append(Approximation(f"oracle rank {k}", "truncation", "finetuned", plug, rank=k))
    return out


def mean_vector(stats: OracleStatistics) -> Approximation:
    """A fixed vector per layer: the oracle's mean (as a steering vector)."""
    from steering.config import SteeringConfig

    tensors = {
        f"layer{layer}_block.delta": stats.mean_shift(layer).float()
        for layer in range(stats.num_layers)
    }

    def plug(base, deltas):
        return steered(base, SteeringConfig(kind="vector"), tensors, "the mean oracle shift")

    size = stats.num_layers * stats.hidden_size
    return Approximation("mean vector", "vector", "finetuned", plug, parameters=size)


def linear_maps(stats: OracleStatistics, ranks: list[int]) -> list[Approximation]:
    """The best rank-r linear map of the block output per layer, as linear steering."""
    from steering.config import SteeringConfig

    full = [stats.least_squares(layer) for layer in range(stats.num_layers)]
    out = []
    for r in ranks:
        tensors = {}
        for layer in range(stats.num_layers):
            down, up = stats.linear_map(layer, r, full[layer])
            tensors[f"layer{layer}_block.down.weight"] = down.float()
            tensors[f"layer{layer}_block.up.weight"] = up.float()
        config = SteeringConfig(kind="adapter", rank=r, activation=None)

        def plug(base, deltas, config=config, tensors=tensors, r=r):
            return steered(base, config, tensors, f"the rank-{r} least-squares map")

        size = 2 * r * stats.hidden_size * stats.num_layers
        out.append(Approximation(f"linear rank {r}", "linear", "finetuned", plug, r, size))
    return out


TRAINED = ("steering", "lora")  # methods whose checkpoints plug into B as they trained


def accuracy_beside(path: str | Path, split: str = "validation") -> float | None:
    """The run's ``<split>.metrics.json`` accuracy: in the checkpoint directory (train.py
    --do-eval) or beside it (the pipeline's run directory); None when neither exists."""
    path = Path(path)
    for where in (path, path.parent):
        found = where / f"{split}.metrics.json"
        if found.is_file():
            return json.loads(found.read_text(encoding="utf-8")).get("accuracy")
    return None


def trained(name: str, path: str | Path) -> list[Approximation]:
    """A trained checkpoint (post-block steering, ours or official, or LoRA) on B, in B's
    frame (the model it trained as, whose accuracy it has) and in F's."""
    from steering.methods import for_checkpoint

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"adapter {name}: checkpoint {path} does not exist")
    method = for_checkpoint(path)
    if method.name not in TRAINED:
        raise ValueError(
            f"adapter {name}: {path} is a {method.name} checkpoint; the analysis plugs in "
            f"checkpoints of {list(TRAINED)}"
        )
    out: list[Approximation] = []

    @contextlib.contextmanager
    def plug(base, deltas):
        if method.name == "steering":
            from steering.methods.steering import load_steered

            model = load_steered(None, base, path)
            release = model.remove
            size = model.num_trainable_parameters()
            config = model.steering_config
            rank = None if config.kind == "vector" else config.rank
        else:
            model = method.load_on(base, path)
            release = model.unload  # PEFT: the LoRA layers out, the base's modules back
            size = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
            rank = int(model.peft_config["default"].r)
        for a in out:
            a.parameters, a.rank = size, rank
        try:
            yield model
        finally:
            release()

    accuracy = accuracy_beside(path)
    for frame in ("base", "finetuned"):
        out.append(
            Approximation(name, "trained", frame, plug, checkpoint=str(path), accuracy=accuracy)
        )
    return out
