"""Batched greedy decoding whose outputs equal one-prompt-at-a-time decoding.

Prompts are sorted by length (longest first, so batches hold similar lengths and padding is
small), left-padded with an attention mask, and decoded greedily with the KV cache for at most
``max_new_tokens``: HF's dynamic cache by default, or its static cache (``cache="static"``),
optionally with ``torch.compile`` of the decoding step (``compile=True``). Measured on the
2-core CPU, neither is faster there (docs/performance.md, "Decoding"); both give the same
tokens, and they are the path HF recommends on a GPU. The continuation is cut from the output
by token position (never by matching the prompt text) and ends before the first EOS. Results
come back in input order.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm
from transformers import CompileConfig, GenerationConfig

from steering.model import layer_dtype_device

CACHES = ("dynamic", "static")  # HF's cache implementations that decoding may use


@dataclass
class Generated:
    tokens: list[list[int]]  # per prompt, the new tokens before the first EOS
    num_generated: int  # new tokens produced, EOS included, padding excluded
    wall_s: float


def _eos_ids(model, eos_token_id) -> list[int]:
    eos = eos_token_id if eos_token_id is not None else model.generation_config.eos_token_id
    if eos is None:
        return []
    return [eos] if isinstance(eos, int) else list(eos)


def input_device(model) -> torch.device:
    """Where token ids go: where the input embedding runs (a device_map model's first GPU;
    for an offloaded embedding, whose weight is on ``meta``, its hook's execution device)."""
    inner = model
    while not hasattr(inner, "get_input_embeddings") and hasattr(inner, "base_model"):
        inner = inner.base_model  # our wrappers (SteeredModel, ReftModel) around the HF model
    if hasattr(inner, "get_input_embeddings"):
        return layer_dtype_device(inner.get_input_embeddings())[1]
    return layer_dtype_device(model)[1]


def _cache_settings(cache: str, compile: bool, device: torch.device) -> dict:
    """GenerationConfig fields for ``cache``: HF compiles a static cache's decoding step on
    its own on a GPU, so the choice is always said; ``compile`` on a CPU needs HF's opt-in."""
    if cache == "dynamic":
        return {}
    if not compile:
        return {"cache_implementation": "static", "disable_compile": True}
    settings = CompileConfig(fullgraph=False, dynamic=None)
    if device.type == "cpu":
        settings.mode = "default"  # "reduce-overhead" means CUDA graphs
        settings._compile_all_devices = True  # HF compiles on accelerators only unless told
    return {"cache_implementation": "static", "compile_config": settings}


@torch.inference_mode()  # cheaper than generate's own no_grad: no version counters
def greedy_generate(
    model,
    prompts: list[list[int]],
    max_new_tokens: int,
    pad_token_id: int,
    eos_token_id: int | list[int] | None = None,
    batch_size: int = 16,
    progress: bool = True,
    desc: str = "generate",
    cache: str = "dynamic",
    compile: bool = False,
) -> Generated:
    """Greedy continuations of token-id ``prompts`` (each a list of ids, no padding);
    ``cache`` one of ``CACHES``, ``compile`` (static cache only) compiles the decoding step."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if cache not in CACHES:
        raise ValueError(f"unknown decoding cache {cache!r}; valid names: {list(CACHES)}")
    if compile and cache != "static":
        raise ValueError("compiled decoding needs the static cache (--decode-cache static)")
    device = input_device(model)
    eos = _eos_ids(model, eos_token_id)
    config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=False,
        num_beams=1,
        use_cache=True,
        pad_token_id=pad_token_id,
        eos_token_id=eos or None,
        **_cache_settings(cache, compile, device),
    )
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    results: list[list[int]] = [[] for _ in prompts]
    generated = 0
    start = time.perf_counter()
    bar = tqdm(total=len(prompts), desc=desc, disable=not progress, unit="ex")
    for first in range(0, len(order), batch_size):
        idx = order[first : first + batch_size]
        width = max(len(prompts[i]) for i in idx)
        ids = torch.tensor([[pad_token_id] * (width - len(prompts[i])) + prompts[i] for i in idx])
        mask = torch.tensor([[0] * (width - len(prompts[i])) + [1] * len(prompts[i]) for i in idx])
        out = model.generate(
            input_ids=ids.to(device), attention_mask=mask.to(device), generation_config=config
        )
        for i, row in zip(idx, out[:, width:].tolist(), strict=True):  # cut by position
            stop = next((k for k, t in enumerate(row) if t in eos), None)
            results[i] = row if stop is None else row[:stop]
            generated += len(row) if stop is None else stop + 1
        bar.update(len(idx))
    bar.close()
    return Generated(results, generated, time.perf_counter() - start)
