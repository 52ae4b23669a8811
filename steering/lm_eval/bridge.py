"""``SteeringLM``: lm-evaluation-harness's ``HFLM`` on the plain base model, with its forward
and generate calls routed through a checkpoint of any method; registered in lm-eval as
``steering``.

HFLM tokenizes, batches, pads, truncates and scores exactly as it does for any Hugging Face
model; only the calls that reach the model change:

- ``_model_call`` (loglikelihood, rolling loglikelihood): ``model(input_ids=...)`` of the
  loaded method. Post-block steering on all positions and joint adaptation run through
  their hooks; last-token steering through its two-copy forward (``steering/last_token.py``),
  so the logits at position t are those of the prefix x_1..x_t steered at t alone, one
  forward per prefix in effect, for any batch and padding; LoRA, full fine-tuning and the
  base model as they are.
- ReFT intervenes on prompt positions (the last token, or the first n and last n). In a
  loglikelihood request the prompt is the context, which ends inside the padded input, not
  at its end: requests are grouped by where their context ends (after HFLM's left
  truncation), each group goes through HFLM's own loop, and its forward marks the
  continuation as supervised (``labels``), which is how ``ReftModel`` finds a prompt's end
  in training. Its cached generation intervenes on the whole (left-padded) prompt.
- ``_model_generate`` (``generate_until``): the method's ``generate``; last-token steering
  decodes greedily with its cache of unsteered states for ``max_length`` minus the context.

HFLM never calls the base model it holds (which carries the method's hooks and LoRA layers)
except through these. ``batch_size`` is taken here: lm-eval ignores
``simple_evaluate(batch_size=)`` for a model built beforehand. The results' ``config``
carries ``steering``: the method, checkpoint, base model, trainable parameters, package
version and commit (``get_model_info``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import torch
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM
from tqdm import tqdm

from steering.lm_eval import checkpoints
from steering.model import SteeredModel

log = logging.getLogger(__name__)


@register_model("steering")
class SteeringLM(HFLM):
    """lm-eval's HFLM for a checkpoint of any method (``checkpoint``), on the base model it
    records (or ``pretrained``, which must agree), or for the base model alone."""

    def __init__(
        self,
        checkpoint: str | None = None,
        pretrained: str | None = None,
        batch_size: int | str = 1,
        device: str | None = None,
        precision: str | None = None,
        dtype: str | None = None,
        device_map: str | None = None,
        activation: str | None = "silu",
        intervene_last: bool | None = None,
        tokenizer: str | None = None,
        **kwargs: Any,
    ) -> None:
        """``precision`` fp32 | tf32 | bf16 (or lm-eval's ``dtype`` float32 | bfloat16);
        ``device`` as lm-eval's (a CUDA device without CUDA falls back to the CPU, as HFLM
        does); ``device_map`` spreads the model over GPUs; ``activation`` and
        ``intervene_last`` describe an official checkpoint file. Other keywords go to HFLM
        (``max_length``, ``add_bos_token``, ``max_batch_size``, ...)."""
        from steering.runtime.precision import resolve

        if not isinstance(pretrained, (str, type(None))):
            raise ValueError("pretrained= is a base model's name or directory (a string)")
        if device and device.startswith("cuda") and not torch.cuda.is_available():
            log.warning("device %s requested but CUDA is not available: using the CPU", device)
            device = None
        dtype = None if dtype in (None, "auto") else str(dtype).removeprefix("torch.")
        self.loaded = checkpoints.load(
            checkpoint,
            pretrained,
            resolve(precision, dtype),
            device,
            device_map,
            activation,
            intervene_last,
        )
        super().__init__(
            pretrained=self.loaded.base,
            tokenizer=tokenizer or self.loaded.base_model,  # a full checkpoint holds none
            batch_size=batch_size,
            **kwargs,
        )
        self.routed = self.loaded.model
        config = getattr(self.routed, "steering_config", None)
        self.last_token = isinstance(self.routed, SteeredModel) and config.positions == "last"
        from steering.methods import get_method

        method = get_method(self.loaded.method)
        # an intervention on prompt positions (ReFT): the loglikelihood forward must know where
        # each request's context ends (``Method.prompt_positions``)
        self.prompt_positions = method.prompt_positions
        self._prompt_end: int | None = None  # the context's length in the current group

    # --- the calls that reach the model ------------------------------------------------------
    def _model_call(self, inps: torch.Tensor, attn_mask=None, labels=None) -> torch.Tensor:
        """(B, S) ids, right-padded -> (B, S, V) logits of the loaded method."""
        if attn_mask is not None or labels is not None:
            raise ValueError("the steering model is a causal LM: no encoder-decoder calls")
        kwargs: dict[str, Any] = {"input_ids": inps}
        if self.prompt_positions:
            # outside a request (lm-eval probing the batch size) the whole input is a prompt
            end = inps.shape[1] if self._prompt_end is None else self._prompt_end
            supervised = inps.clone()
            supervised[:, :end] = -100  # the prompt ends where the labels begin
            kwargs["labels"] = supervised
        with torch.no_grad(), self._autocast():
            return self.routed(**kwargs).logits

    def _model_generate(self, context, max_length, stop, **generation_kwargs):
        if not self.last_token:
            with self._serving(self.routed):
                return super()._model_generate(context, max_length, stop, **generation_kwargs)
        sampling = generation_kwargs.get("do_sample") or generation_kwargs.get("temperature", 0)
        if sampling:
            raise ValueError(
                "last-token steering decodes greedily: give the task do_sample: false "
                "(temperature 0)"
            )
        eos = self.routed.generation_config.eos_token_id
        with torch.no_grad(), self._autocast():
            return self.routed.generate(
                input_ids=context,
                attention_mask=generation_kwargs.get("attention_mask"),
                max_new_tokens=max_length - context.shape[1],
                eos_token_id=self.eot_token_id if eos is None else eos,
                pad_token_id=self.tokenizer.pad_token_id,
            )

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, override_bs=None):
        if not self.prompt_positions:
            return super()._loglikelihood_tokens(requests, disable_tqdm, override_bs)
        groups: dict[int, list[int]] = {}
        for i, (_, context, continuation) in enumerate(requests):
            groups.setdefault(self.context_end(context, continuation), []).append(i)
        out: list = [None] * len(requests)
        bar = tqdm(total=len(requests), disable=disable_tqdm or self.rank != 0, desc="requests")
        for end, members in sorted(groups.items()):
            self._prompt_end = end
            try:
                scored = super()._loglikelihood_tokens(
                    [requests[i] for i in members], True, override_bs
                )
            finally:
                self._prompt_end = None
            for i, result in zip(members, scored, strict=True):
                out[i] = result
            bar.update(len(members))
        bar.close()
        return out

    def context_end(self, context: list[int], continuation: list[int]) -> int:
        """Where a request's context ends in the input HFLM builds from it: context plus
        continuation less its last token, cut from the left to ``max_length`` + 1 tokens."""
        cut = max(0, len(context) + len(continuation) - (self.max_length + 1))
        return max(0, len(context) - cut)

    # --- helpers -----------------------------------------------------------------------------
    def _autocast(self):
        return torch.autocast(
            device_type=self.device.type,
            dtype=self.mixed_precision_dtype,
            enabled=self.mixed_precision_dtype is not None,
        )

    @contextlib.contextmanager
    def _serving(self, model) -> Iterator[None]:
        """HFLM's own generate path, on ``model`` instead of the base it holds."""
        held, self._model = self._model, model
        try:
            yield
        finally:
            self._model = held

    def get_model_info(self) -> dict:
        """lm-eval's model information, and ours under ``steering``."""
        return {**super().get_model_info(), "steering": self.loaded.provenance()}
