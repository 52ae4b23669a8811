"""Exact last-token steering, in training and in cached generation.

Definition: for a sequence x_1..x_T, the logits that predict x_{t+1} come from a forward pass
over the prefix x_1..x_t in which steering is applied only at position t (at every steered
layer); every earlier position is computed without steering.

Training (``packed_forward``), one pass whatever the number of supervised positions: the
input is the sequence twice, [x_1..x_S | x_1..x_S] (2S positions, the copy with the same
position ids). A 4-D attention mask lets the first (plain) copy attend causally to itself and
the second (steered) copy's query t attend to the plain keys j < t and to its own key only:

    mask[q, k] = allowed if  q < S,  k < S,  k <= q                       (plain, causal)
                         or  q >= S, k < S,  k < q - S                   (steered -> plain past)
                         or  q >= S, k = q                               (steered -> itself)

Steering hooks act on the second copy only, and its logits are, position by position, those
of the definition. Padded keys are masked; the diagonal is always allowed so no row is empty.

Generation (``generate``): the KV cache holds plain states only. The prompt pass appends one
steered copy of the last prompt token; each later step feeds the new token twice (plain, then
steered, the steered one attending to the cache and itself); the steered entry is then dropped
from the cache and its logits choose the next token (greedy).

Models with a sliding attention window shorter than the sequence cannot take the trick (their
window would be ignored by the custom mask): they get a clear error.
"""

from __future__ import annotations

import torch
from transformers import DynamicCache

from steering.architectures import text_config


def sliding_window(model) -> int | None:
    cfg = text_config(model)
    if getattr(cfg, "use_sliding_window", True) is False:  # Qwen2/3 keep the field but disable it
        return None
    return getattr(cfg, "sliding_window", None)


def check_window(model, length: int) -> None:
    window = sliding_window(model)
    if window is not None and length > window:
        raise ValueError(
            f"last-token steering needs a custom attention mask, which would bypass this "
            f"model's sliding window of {window} tokens; the sequence has {length} positions. "
            f"Use positions='all', or shorter sequences"
        )


def _additive(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, Q, K) booleans -> (B, 1, Q, K) additive mask in ``dtype``."""
    mask = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
    return mask.masked_fill(~allowed, torch.finfo(dtype).min)[:, None]


def positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids that start at 0 at each row's first real token (left padding)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def packed_mask(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The (B, 1, 2S, 2S) mask of the two-copy forward (see the module docstring)."""
    b, s = attention_mask.shape
    dev = attention_mask.device
    q = torch.arange(s, device=dev)
    real = attention_mask.bool()[:, None, :]  # (B, 1, S) keys that are not padding
    plain = (q[:, None] >= q[None, :])[None] & real  # (B, S, S)
    past = (q[:, None] > q[None, :])[None] & real
    eye = torch.eye(s, dtype=torch.bool, device=dev).expand(b, s, s)
    top = torch.cat([plain, torch.zeros_like(plain)], dim=2)
    bottom = torch.cat([past, eye], dim=2)
    allowed = torch.cat([top, bottom], dim=1) | torch.eye(2 * s, dtype=torch.bool, device=dev)
    return _additive(allowed, dtype)


def packed_forward(steered, input_ids, attention_mask=None, labels=None, **kwargs):
    """The last-token-steered logits (and loss) of every position, in one forward pass."""
    if kwargs.get("past_key_values") is not None:
        raise ValueError(
            "last-token steering does not take past_key_values in forward; use generate()"
        )
    kwargs.pop("use_cache", None)
    b, s = input_ids.shape
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    check_window(steered.base_model, s)
    pos = positions(attention_mask)
    dtype = next(steered.base_model.parameters()).dtype
    with steered.steering_from(s):
        return steered.base_model(
            input_ids=torch.cat([input_ids, input_ids], dim=1),
            attention_mask=packed_mask(attention_mask, dtype),
            position_ids=torch.cat([pos, pos], dim=1),
            labels=labels,
            logits_to_keep=s,  # the steered copy only: its logits line up with ``labels``
            use_cache=False,
            **kwargs,
        )


def sampler(config):
    """HF ``generate``'s sampling for a generation config: its temperature, top-k and top-p
    warpers in HF's order, then one draw per row from the softmax ((B, V) -> (B,))."""
    from transformers import LogitsProcessorList
    from transformers.generation.logits_process import (
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    warpers = LogitsProcessorList()
    if config.temperature is not None and config.temperature != 1.0:
        warpers.append(TemperatureLogitsWarper(config.temperature))
    if config.top_k:
        warpers.append(TopKLogitsWarper(config.top_k))
    if config.top_p is not None and config.top_p < 1.0:
        warpers.append(TopPLogitsWarper(config.top_p))

    def pick(logits: torch.Tensor) -> torch.Tensor:
        scores = warpers(None, logits.float())
        return torch.multinomial(torch.softmax(scores, dim=-1), 1)[:, 0]

    return pick


@torch.inference_mode()
def generate(
    steered,
    input_ids,
    attention_mask=None,
    max_new_tokens: int = 20,
    eos_token_id=None,
    pad_token_id: int | None = None,
    pick=None,
) -> torch.Tensor:
    """Decoding under last-token steering with a cache of plain states: greedy, or each token
    drawn by ``pick`` ((B, V) logits -> (B,) ids; ``sampler`` builds HF's sampling).

    Returns (B, P + n) ids like HF ``generate``: the prompt, then new tokens; a row that has
    produced EOS is padded with ``pad_token_id`` until every row is done.
    """
    pick = pick or (lambda logits: logits.argmax(-1))
    model = steered.base_model
    b, p = input_ids.shape
    dev = input_ids.device
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    eos = (
        []
        if eos_token_id is None
        else ([eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id))
    )
    pad = pad_token_id if pad_token_id is not None else (eos[0] if eos else 0)
    check_window(model, p + max_new_tokens)
    dtype = next(model.parameters()).dtype
    real = attention_mask.bool()
    pos = positions(attention_mask)

    # prompt pass: the plain prompt plus a steered copy of its last token
    q = torch.arange(p, device=dev)
    allowed = torch.zeros(b, p + 1, p + 1, dtype=torch.bool, device=dev)
    allowed[:, :p, :p] = (q[:, None] >= q[None, :])[None] & real[:, None, :]
    allowed[:, p, :p] = (q < p - 1)[None] & real
    allowed |= torch.eye(p + 1, dtype=torch.bool, device=dev)
    cache = DynamicCache(config=model.config)
    with steered.steering_from(p):
        out = model(
            input_ids=torch.cat([input_ids, input_ids[:, -1:]], dim=1),
            attention_mask=_additive(allowed, dtype),
            position_ids=torch.cat([pos, pos[:, -1:]], dim=1),
            past_key_values=cache,
            use_cache=True,
            cache_position=torch.arange(p + 1, device=dev),
            logits_to_keep=1,
        )
    cache = out.past_key_values
    cache.crop(-1)  # drop the steered entry: the cache holds plain states only
    nxt = pick(out.logits[:, -1])
    cur = pos[:, -1]
    done = torch.zeros(b, dtype=torch.bool, device=dev)
    new = []
    for step in range(max_new_tokens):
        nxt = torch.where(done, torch.full_like(nxt, pad), nxt)
        new.append(nxt)
        if eos:
            done |= torch.isin(nxt, torch.tensor(eos, device=dev))
        if bool(done.all()) or step == max_new_tokens - 1:
            break
        cur = cur + 1
        length = cache.get_seq_length()
        allowed = torch.zeros(b, 2, length + 2, dtype=torch.bool, device=dev)
        allowed[:, :, :length] = real[:, None, :]
        allowed[:, 0, length] = True
        allowed[:, 1, length + 1] = True
        with steered.steering_from(1):
            out = model(
                input_ids=torch.stack([nxt, nxt], dim=1),
                attention_mask=_additive(allowed, dtype),
                position_ids=torch.stack([cur, cur], dim=1),
                past_key_values=cache,
                use_cache=True,
                cache_position=torch.arange(length, length + 2, device=dev),
                logits_to_keep=1,
            )
        cache = out.past_key_values
        cache.crop(-1)
        real = torch.cat([real, torch.ones(b, 1, dtype=torch.bool, device=dev)], dim=1)
        nxt = pick(out.logits[:, -1])
    return torch.cat([input_ids, torch.stack(new, dim=1)], dim=1)
