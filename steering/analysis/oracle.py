"""Oracle shifts: the activation shift after each block of a base model B that reproduces its
fully fine-tuned copy F (the paper's analysis, docs/analysis.md).

With x^F_l the input of F's block l (x^F_0: F's embeddings) and y^F_l its output,

    delta_l = y^F_l - B_l(x^F_l)                        (tokens, H)
            = d_attn + d_mlp,   d_attn = a^F_l(x) - a^B_l(x),   d_mlp = m^F_l - m^B_l

where a and m are the attention and MLP branch outputs (the ``attn`` / ``mlp`` steering sites
of ``steering/architectures.py``) on the same input x = x^F_l; the MLP's input differs between
the two blocks when their attention differs. Added after every block of B, and with F's
parameters outside the blocks (embeddings, final norm, LM head: the *frame*,
``finetuned_frame``), the shifts reproduce F's hidden states and logits exactly.

``oracle_forward`` runs F once on a row batch; a hook on each of F's blocks calls B's block on
the same arguments (hidden state, mask, position embeddings), so any architecture of the
registry works and only one block's tensors exist at a time beyond what the caller keeps.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from steering.architectures import (
    decoder_layers,
    get_architecture,
    site_module,
    text_config,
    uses_chat_template,
)
from steering.data import IGNORE_INDEX, Collator, encode_example

BRANCHES = ("attn", "mlp")


@dataclass
class RowBatch:
    """A padded batch of validation rows (prompt + completion, right padding)."""

    input_ids: torch.Tensor  # (b, S)
    attention_mask: torch.Tensor  # (b, S) 1 on real tokens
    predicts_completion: torch.Tensor  # (b, S) bool: position t predicts a completion token t+1

    def to(self, device: torch.device) -> RowBatch:
        return RowBatch(*(t.to(device) for t in vars(self).values()))


def encode_rows(task, rows, tokenizer, model_type: str, single_bos: bool = False) -> list[dict]:
    """Each row as training sees it (``steering/data.py``): prompt + completion, labels -100
    on the prompt, right-truncated at the task's length."""
    chat = uses_chat_template(model_type)
    max_length = task.max_length_for(chat)
    return [
        encode_example(tokenizer, task.prompt(r), task.completion(r), max_length, chat, single_bos)
        for r in rows
    ]


def row_batches(examples: list[dict], batch_rows: int, pad_token_id: int) -> Iterator[RowBatch]:
    collate = Collator(pad_token_id)
    for i in range(0, len(examples), batch_rows):
        batch = collate(examples[i : i + batch_rows])
        labels = batch["labels"]  # (b, S)
        predicts = torch.zeros_like(labels, dtype=torch.bool)
        predicts[:, :-1] = labels[:, 1:] != IGNORE_INDEX  # logits at t score token t+1
        yield RowBatch(batch["input_ids"], batch["attention_mask"], predicts)


def check_pair(base: nn.Module, finetuned: nn.Module, where: str = "the fine-tuned model") -> None:
    """F must be B's architecture and vocabulary, parameter for parameter; ValueError says
    what differs."""
    bt, ft = text_config(base), text_config(finetuned)
    get_architecture(base)
    for key in ("model_type", "num_hidden_layers", "hidden_size", "vocab_size"):
        b, f = getattr(bt, key, None), getattr(ft, key, None)
        if key == "model_type":
            b, f = base.config.model_type, finetuned.config.model_type
        if b != f:
            raise ValueError(
                f"{where} has {key}={f!r} but the base model has {key}={b!r}: the analysis "
                "needs a fully fine-tuned copy of the same base model (same architecture and "
                "vocabulary)"
            )
    theirs = {n: p.shape for n, p in finetuned.named_parameters()}
    ours = {n: p.shape for n, p in base.named_parameters()}
    if theirs != ours:
        diff = sorted(set(theirs) ^ set(ours)) or [n for n in ours if ours[n] != theirs[n]]
        raise ValueError(
            f"{where} has other parameters than the base model (first: {diff[:3]}); it must be "
            "a full fine-tune of this base model"
        )


def frame_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """The parameters outside the decoder blocks (embeddings, final norm, LM head; tied
    weights once)."""
    inside = {id(p) for p in decoder_layers(model).parameters()}
    return {n: p for n, p in model.named_parameters() if id(p) not in inside}


@contextlib.contextmanager
def finetuned_frame(base: nn.Module, finetuned: nn.Module) -> Iterator[nn.Module]:
    """Within the block, ``base`` computes with F's parameters outside its blocks (storage
    swapped, not copied; restored on exit)."""
    ours, theirs = frame_parameters(base), frame_parameters(finetuned)
    held = {n: p.data for n, p in ours.items()}
    try:
        for n, p in ours.items():
            p.data = theirs[n].data
        yield base
    finally:
        for n, p in ours.items():
            p.data = held[n]


def _first(output):
    return output[0] if isinstance(output, tuple) else output


def _hidden_arg(args, kwargs) -> torch.Tensor:
    return args[0] if args else kwargs["hidden_states"]


# on_layer(l, b_out, delta, d_attn, d_mlp): b_out = B_l(x^F_l), all (b, S, H)
LayerCallback = Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], None]


@torch.no_grad()
def oracle_forward(
    base: nn.Module, finetuned: nn.Module, batch: RowBatch, on_layer: LayerCallback
) -> torch.Tensor:
    """F's logits (b, S, V) on ``batch``; ``on_layer`` sees each block's oracle shift and its
    parts as F's forward reaches the block."""
    f_layers, b_layers = decoder_layers(finetuned), decoder_layers(base)
    seen: dict[tuple[str, str], torch.Tensor] = {}
    handles = []

    def keep(model_name: str, branch: str):
        def hook(module, args, output):
            seen[model_name, branch] = _first(output)

        return hook

    for name, model, layers in (("F", finetuned, f_layers), ("B", base, b_layers)):
        for layer in layers:
            for branch in BRANCHES:
                module = site_module(model, layer, branch)
                handles.append(module.register_forward_hook(keep(name, branch)))

    def on_block(index: int):
        def hook(module, args, kwargs, output):
            y_f = _first(output)  # (b, S, H)
            f_parts = {b: seen.pop(("F", b)) for b in BRANCHES}
            b_out = _first(b_layers[index](*args, **kwargs))  # B_l(x^F_l), same mask/positions
            b_parts = {b: seen.pop(("B", b)) for b in BRANCHES}
            delta = y_f - b_out
            on_layer(
                index,
                b_out,
                delta,
                f_parts["attn"] - b_parts["attn"],
                f_parts["mlp"] - b_parts["mlp"],
            )

        return hook

    handles += [
        layer.register_forward_hook(on_block(i), with_kwargs=True)
        for i, layer in enumerate(f_layers)
    ]
    try:
        out = finetuned(
            input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False
        )
    finally:
        for h in handles:
            h.remove()
    return out.logits


@contextlib.contextmanager
def shifted(model: nn.Module, shift: Callable[[int, torch.Tensor], torch.Tensor]):
    """Within the block, every block l of ``model`` outputs h + shift(l, h) (the steering
    hook's form, ``steering/model.py``, for shifts that are not a module of h: stored oracle
    shifts and their truncations)."""

    def hook_for(index: int):
        def hook(module, args, output):
            h = _first(output)
            h = h + shift(index, h).to(h.dtype)
            return (h, *output[1:]) if isinstance(output, tuple) else h

        return hook

    handles = [
        layer.register_forward_hook(hook_for(i)) for i, layer in enumerate(decoder_layers(model))
    ]
    try:
        yield model
    finally:
        for h in handles:
            h.remove()


def completion_kl(
    reference_logp: torch.Tensor, logits: torch.Tensor, predicts: torch.Tensor
) -> tuple[float, int]:
    """(sum over completion positions of KL(P_F || P), positions): ``reference_logp`` is F's
    log-probabilities at those positions (n, V), ``logits`` the model's (b, S, V)."""
    logp = torch.log_softmax(logits[predicts].double(), dim=-1)  # (n, V)
    kl = (reference_logp.exp() * (reference_logp - logp)).sum(-1)  # (n,)
    return float(kl.sum()), int(kl.numel())


def reference_logprobs(logits: torch.Tensor, predicts: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(logits[predicts].double(), dim=-1)  # (n, V)
