"""Padding-free training batches: the rows of a batch concatenated into one sequence.

A padded batch of rows r_1 .. r_b (lengths n_1 .. n_b) feeds b x max_i n_i tokens. The packed
batch feeds the same rows, in the same order, as one row of N = sum_i n_i tokens:

    input_ids    = r_1 ++ r_2 ++ ... ++ r_b                         (1, N)
    position_ids = 0 .. n_1 - 1 ++ 0 .. n_2 - 1 ++ ...              (1, N)
    labels       = the rows' labels, -100 at each row's first token (1, N)

with no attention mask and no KV cache (``use_cache=False``). transformers 5 then reads the
restarting position ids as sequence boundaries (``masking_utils.find_packed_sequence_indices``)
and builds a block-diagonal causal mask (sdpa, eager and flex attention; FlashAttention uses
its variable-length kernels), so no token attends across rows. Every position's hidden states
are those of the padded batch, and the loss, the mean cross-entropy over the supervised
tokens, has the same terms: the -100 at each row's first token keeps the last token of one row
from predicting the first of the next. The detection is skipped when an attention mask is
passed or a cache exists; rows would then attend to each other (``tests/test_packing.py``
shows it), hence both are left out here.

Packing is exact for interventions that act on every position alike (post-block steering,
vectors, submodules, LoRA, full fine-tuning, joint). It is refused, and the batch padded, for
methods that act on particular positions of each row (last-token steering, ReFT:
``Method.packing_refusal``) and for architectures whose attention or positions ignore packed
position ids (``ARCHITECTURE_REFUSALS``: GPT-2 and OPT, measured). The module imports no torch
at import time: the plan (``steering/pipeline/padding.py``) reads the same refusals.
"""

from __future__ import annotations

from typing import Any

IGNORE_INDEX = -100

# Architectures whose packed loss differs from the padded one (their attention does not read
# packed position ids; OPT also derives its positions from the attention mask).
ARCHITECTURE_REFUSALS = {
    "gpt2": "GPT-2's attention does not separate packed rows",
    "opt": "OPT derives positions from the attention mask and does not separate packed rows",
}


def refusal(model_type: str, method, options: dict, steering) -> str | None:
    """Why a run cannot pack its batches exactly (None: it can)."""
    if model_type in ARCHITECTURE_REFUSALS:
        return ARCHITECTURE_REFUSALS[model_type]
    return method.packing_refusal(options, steering)


class PackedCollator:
    """A batch's rows concatenated into one row (module docstring): ``input_ids``,
    ``position_ids`` and ``labels`` of shape (1, N), ``use_cache`` False, no attention mask."""

    def __call__(self, rows: list[dict[str, list[int]]]) -> dict[str, Any]:
        import torch  # here: the plan reads ``refusal`` without torch

        ids, positions, labels = [], [], []
        for r in rows:
            n = len(r["input_ids"])
            ids += list(r["input_ids"])
            positions += range(n)
            labels += [IGNORE_INDEX, *list(r["labels"])[1:]] if n else []
        return {
            "input_ids": torch.tensor([ids]),
            "position_ids": torch.tensor([positions]),
            "labels": torch.tensor([labels]),
            "use_cache": False,
        }
