"""Logits only where a label is: the LM head of a training step run on the supervised positions.

A causal LM's training loss is the mean cross-entropy over the positions t whose next token
is supervised (``labels[b, t + 1] != -100``, HF's ``ForCausalLMLoss``):

    loss = sum_{(b, t) in M} -log softmax(W h_{b,t})[y_{b,t+1}] / n,
    M = {(b, t) : labels[b, t + 1] != -100},  n = |M| (or the Trainer's ``num_items_in_batch``)

Every other position's logits (prompt and padding: ~5 of every 6 on ARC) are computed and
thrown away. ``SupervisedHead`` hooks the model's output embedding (the LM head) so that,
inside ``SupervisedHead.only(inputs)``, it receives the hidden states of M alone, gathered in
row-major order as one (1, |M|, H) row; the model's own forward applies whatever follows the
head (Gemma's soft-capping) and its own loss function, given ``shift_labels`` = the targets
y_{b,t+1} of M in the same order (1, |M|). The loss is therefore the same quantity, from the
same code, over the same terms; only the order of the sums (and the matrix product's
blocking) differs. Nothing else changes: the hook sits on the innermost HF model, under the
method's wrapper (steering, last-token, LoRA, ReFT, joint, full fine-tuning) and under DDP or
FSDP, and outside ``only`` (evaluation, generation) it does nothing.

``--logits all`` (``TrainSettings.logits``) turns it off: the head then runs on every
position, as before.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

IGNORE = -100
MODES = ("supervised", "all")  # TrainSettings.logits; "supervised" is the default


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"--logits {mode!r} is invalid; choose one of {list(MODES)}")
    return mode


def supervised_positions(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mask (B, S): position t predicts a supervised token, targets (1, N): those tokens in
    row-major order). The last position predicts nothing."""
    nxt = labels[:, 1:]  # (B, S-1): the token each position t < S-1 predicts
    keep = nxt != IGNORE
    mask = torch.cat([keep, torch.zeros_like(keep[:, :1])], dim=1)  # (B, S)
    return mask, nxt[keep][None]  # (1, N)


def output_head(model: nn.Module) -> nn.Module:
    """The LM head of the innermost HF model inside ``model`` (any method's wrapper, PEFT,
    DDP or FSDP)."""
    from transformers import PreTrainedModel

    for module in model.modules():
        if isinstance(module, PreTrainedModel):
            head = module.get_output_embeddings()
            if isinstance(head, nn.Module):
                return head
    raise ValueError(
        f"{type(model).__name__} holds no Hugging Face model with an output embedding (LM "
        "head) to restrict; train it with --logits all"
    )


class SupervisedHead:
    """A forward pre-hook on ``model``'s LM head that, inside ``only``, feeds it the hidden
    states of the supervised positions alone."""

    def __init__(self, model: nn.Module) -> None:
        self.head = output_head(model)
        self._mask: torch.Tensor | None = None  # (B, S) while a training step runs
        self._handle = self.head.register_forward_pre_hook(self._gather)

    def _gather(self, module: nn.Module, args: tuple) -> tuple | None:
        if self._mask is None or not args:
            return None
        h = args[0]  # (B, S, H): the positions the model kept (last-token: the steered copy)
        if h.shape[:2] != self._mask.shape:
            raise RuntimeError(
                f"the LM head received hidden states of shape {tuple(h.shape)} for labels of "
                f"shape {tuple(self._mask.shape)}; this model cannot restrict its logits to the "
                "supervised positions: train it with --logits all"
            )
        return (h[self._mask.to(h.device)][None], *args[1:])  # (1, N, H)

    @contextlib.contextmanager
    def only(self, inputs: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """``inputs`` plus the ``shift_labels`` the model's loss then needs; within the block
        the head computes the supervised positions' logits alone. Without labels: unchanged."""
        labels = inputs.get("labels")
        if labels is None or "shift_labels" in inputs:
            yield inputs
            return
        mask, targets = supervised_positions(labels)
        self._mask = mask
        try:
            yield {**inputs, "shift_labels": targets}
        finally:
            self._mask = None

    def remove(self) -> None:
        self._handle.remove()


def loss_of(model: nn.Module, head: SupervisedHead | None, inputs: dict[str, Any]):
    """The model's outputs on ``inputs`` (with labels), logits restricted when ``head`` is
    given: what a training step computes, outside the Trainer (benchmarks, tests)."""
    if head is None:
        return model(**inputs)
    with head.only(inputs) as restricted:
        return model(**restricted)
