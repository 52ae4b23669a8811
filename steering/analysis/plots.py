"""The oracle-shift analysis's plots (``steering/analysis/run.py``; the conventions of
``steering/pipeline/plots.py``: Agg backend, written atomically, legends outside the data).

- ``plot_effective_rank``: per layer, the ranks holding 90 % and 99 % of the oracle shift's
  energy (log axis).
- ``plot_mlp_share``: per layer, the mean over tokens of ||d_mlp|| / ||delta|| and of
  ||d_attn|| / ||delta||, and the mean cosine between d_mlp and delta.
- ``plot_kl``: the mean per-token KL(F || B + shift) of each approximation, a bar each
  (log axis; a value under the floor drawn at the floor).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from steering.pipeline.plots import _pyplot, _save

KL_FLOOR = 1e-6
FRAME_COLOUR = {"finetuned": "C0", "base": "C1"}


def plot_effective_rank(layers: pd.DataFrame, path: str | Path):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for column, label, style in (("rank90", "90 % energy", "o-"), ("rank99", "99 % energy", "s--")):
        ax.plot(layers["layer"], layers[column].clip(lower=1), style, ms=3, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("layer", fontsize=9)
    ax.set_ylabel("effective rank", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    ax.set_title("Oracle shift per layer: ranks holding 90 % / 99 % of its energy", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def plot_mlp_share(layers: pd.DataFrame, path: str | Path):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    lines = (
        ("mlp_share", "||d_mlp|| / ||delta||", "o-"),
        ("attn_share", "||d_attn|| / ||delta||", "^-"),
        ("mlp_cosine", "cos(d_mlp, delta)", "s--"),
    )
    for column, label, style in lines:
        ax.plot(layers["layer"], layers[column], style, ms=3, label=label)
    ax.axhline(0.7, color="grey", lw=0.8, ls=":", label="paper: MLP share at most 0.7")
    ax.set_xlabel("layer", fontsize=9)
    ax.set_ylabel("mean over tokens", fontsize=9)
    ax.set_ylim(bottom=min(0.0, float(layers["mlp_cosine"].min()) - 0.05))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    ax.set_title("What the MLP carries of the oracle shift, per layer", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def plot_kl(table: pd.DataFrame, path: str | Path):
    plt = _pyplot()
    from matplotlib.patches import Patch

    labels = [
        f"{r.approximation} ({'B' if r.frame == 'base' else 'F'} frame)" for r in table.itertuples()
    ]
    values = table["kl"].clip(lower=KL_FLOOR)
    fig, ax = plt.subplots(figsize=(6.8, 1.2 + 0.28 * len(table)))
    ys = range(len(table))
    ax.barh(ys, values, color=[FRAME_COLOUR[f] for f in table["frame"]], alpha=0.8)
    ax.set_yticks(list(ys), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel(f"mean KL(F || B + shift) per completion token (floor {KL_FLOOR:g})", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    handles = [
        Patch(color=FRAME_COLOUR["finetuned"], alpha=0.8, label="F's embeddings and head"),
        Patch(color=FRAME_COLOUR["base"], alpha=0.8, label="B's embeddings and head"),
    ]
    ax.legend(
        handles=handles,
        fontsize=8,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.5 / fig.get_figheight() * 3),
        ncol=2,
    )
    ax.set_title("How close each shift after every block gets to full fine-tuning", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)
