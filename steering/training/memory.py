"""A memory plan: what one job needs per GPU, and on its host, from the model's config alone
(no weights, no torch; the pipeline plans with it).

The estimate, in bytes, for P base parameters, T trainable ones, a batch of b rows of s
tokens, L layers of hidden size H, MLP size I, key/value width K (heads x head size), a
vocabulary of V, activations of a bytes (2 under bf16, else 4), on N GPUs:

- weights: P x 2 (a bf16 base) or 4 (fp32); full fine-tuning 4 under any precision (float32
  master weights); divided by N under FSDP;
- trainable states: T x 16 (float32 weights 4, gradients 4, AdamW's two moments 8); full
  fine-tuning, whose weights are counted above, P x 12, divided by N under FSDP;
- activations kept for the backward pass: b s L (6 H + 2 K + 4 I) a: per layer and token the
  two norms' inputs and outputs, the query, keys and values, the attention output, the MLP's
  gate, up, activation and product (memory-efficient attention keeps no s x s scores), times
  the method's ``activation_factor`` (LoRA keeps more: each adapted projection's input);
- logits: b n V (a + 8): the logits, their float32 copy in the loss, and its gradient, for n
  positions a row: its supervised tokens when training computes the LM head there alone
  (``--logits supervised``, the default: steering/training/logits.py), else all s; a plan made
  before the data is tokenized takes n = s (the bound), one given the rows' most supervised tokens
  takes that;
- overhead: 1.5 GiB (CUDA context, kernel workspaces, allocator slack).

GRPO (``grpo_estimate``), for prompts of p and completions of c tokens (s = p + c): the
same weights and states, and its scoring pass (the forward and backward over prompt and
completion), b rows' activations as above plus the logits b s V a and their float32
completion slice, scaled and log-softmaxed, b c V 12. The rollouts, which generate the whole
generation batch of 4b rows (4 accumulation steps) at once without gradients, hold a KV cache
of 4b s L 2 K a: never more than the scoring pass's activations, b s L (6 H + 2 K + 4 I) a,
since 8 K <= 6 H + 2 K + 4 I for every model (K <= H), so the scoring pass is the peak.

Evaluation: weights + the KV cache b (prompt + new tokens) L 2 K a + logits b V 4 +
overhead. The host of a job holds each process's copy of the weights while it loads, plus
about 3 GiB of runtime. Estimates, checked against measured peaks by
``benchmarks/memory_plan.py``; each method gives its trainable count (``Method.estimate``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GIB = 2**30
MIB = 2**20
OVERHEAD = int(1.5 * GIB)
HOST_RUNTIME = 3 * GIB

# Memory of one GPU of each kind as torch reports it (``get_device_properties().total_memory``,
# a little under the data sheet's 80 / 141 GB): what a training job checks its estimate
# against, so what the plan (``steering/pipeline/budget.py``) checks too. H100 80GB HBM3 and H200
# from published torch output (81,082-81,090 and 143,156 MiB); A100 80GB from nvidia-smi's 81,920
# MiB less the ~480 MiB torch reports under it on the H100 (not yet read off an A100).
GPU_MEMORY = {"h100": 81_082 * MIB, "h200": 143_156 * MIB, "a100": 81_440 * MIB}


@dataclass(frozen=True)
class Shape:
    """What the estimate needs of a model, read from its HF config."""

    model_type: str
    hidden: int
    layers: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool
    gated: bool = True  # a gated MLP (gate, up, down) or a plain one (up, down)
    positions: int = 0  # learned position embeddings (GPT-2, OPT)
    extra_norms: int = 0  # norms per layer beyond the usual two (Gemma-2/3 sandwich: 2)

    @property
    def kv(self) -> int:
        return self.kv_heads * self.head_dim

    @property
    def q(self) -> int:
        return self.heads * self.head_dim

    def parameters(self) -> int:
        """Parameters of the model (weights; biases, a small share, left out)."""
        h, i = self.hidden, self.intermediate
        attention = h * self.q + 2 * h * self.kv + self.q * h
        mlp = (3 if self.gated else 2) * h * i
        per_layer = attention + mlp + (2 + self.extra_norms) * h
        embeddings = self.vocab * h * (1 if self.tied else 2) + self.positions * h
        return embeddings + self.layers * per_layer + h

    def projections(self) -> list[tuple[int, int]]:
        """(in, out) of the seven projections of one layer LoRA adapts (q k v o gate up down)."""
        h, i = self.hidden, self.intermediate
        mlp = [(h, i), (h, i), (i, h)] if self.gated else [(h, i), (i, h)]
        return [(h, self.q), (h, self.kv), (h, self.kv), (self.q, h), *mlp]


def shape_of(config: dict[str, Any]) -> Shape:
    """The shape of an HF ``config.json`` (a multimodal one's text model)."""
    c = config.get("text_config") or config
    model_type = config.get("model_type", c.get("model_type", ""))
    hidden = c.get("hidden_size") or c.get("n_embd") or c["d_model"]
    heads = c.get("num_attention_heads") or c.get("n_head")
    plain = model_type in ("gpt2", "opt", "gpt_neox")
    learned = model_type in ("gpt2", "opt")
    positions = (c.get("n_positions") or c.get("max_position_embeddings") or 0) if learned else 0
    intermediate = c.get("intermediate_size") or c.get("ffn_dim") or c.get("n_inner")
    return Shape(
        model_type=model_type,
        hidden=hidden,
        layers=c.get("num_hidden_layers") or c.get("n_layer"),
        intermediate=intermediate or 4 * hidden,
        heads=heads,
        kv_heads=c.get("num_key_value_heads") or heads,
        head_dim=c.get("head_dim") or hidden // heads,
        vocab=c["vocab_size"],
        tied=bool(c.get("tie_word_embeddings", config.get("tie_word_embeddings", True))),
        gated=not plain,
        positions=positions,
        extra_norms=2 if model_type.startswith(("gemma2", "gemma3")) else 0,
    )


def read_config(model: str | Path) -> dict[str, Any] | None:
    """A model's ``config.json``: from its directory, else the local hub cache (no network),
    else the shape the project ships for the paper's models
    (``steering/loading/public_configs.py``); None when none has it."""
    path = Path(model) / "config.json"
    if not path.is_file():
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(str(model), "config.json")
        except Exception:  # a name that is no repo id, no cache: nothing to read
            cached = None
        if not isinstance(cached, str):
            from steering.loading.public_configs import public_config

            return public_config(str(model))
        path = Path(cached)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


@dataclass
class Estimate:
    """Bytes per GPU of one job, by part (see the module docstring)."""

    weights: int
    trainable_states: int
    activations: int
    logits: int
    overhead: int = OVERHEAD
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        parts = (self.weights, self.trainable_states, self.activations, self.logits)
        return sum(parts) + self.overhead

    def describe(self) -> str:
        parts = ("weights", "trainable_states", "activations", "logits", "overhead")
        return ", ".join(f"{p.replace('_', ' ')} {getattr(self, p) / GIB:.1f}" for p in parts)


def train_estimate(
    shape: Shape,
    trainable: int,
    full: bool,
    precision: str,
    batch: int,
    tokens: int,
    gpus: int = 1,
    sharded: bool = False,
    activation_factor: float = 1.0,
    supervised: int | None = None,
) -> Estimate:
    """Peak bytes per GPU of a training job (``trainable``: the method's count; ``full``:
    the base itself trains; ``activation_factor``: the method's, see ``Method``;
    ``supervised``: positions a row whose logits are computed, None = all ``tokens``)."""
    p = shape.parameters()
    act = 2 if precision == "bf16" else 4
    split = gpus if sharded else 1
    weights = p * (4 if full or precision != "bf16" else 2) // split
    states = (12 * p if full else 16 * trainable) // split
    per_token = 6 * shape.hidden + 2 * shape.kv + 4 * shape.intermediate
    activations = int(batch * tokens * shape.layers * per_token * act * activation_factor)
    logit_rows = tokens if supervised is None else min(supervised, tokens)
    logits = batch * logit_rows * shape.vocab * (act + 8)
    return Estimate(weights, states, activations, logits)


def grpo_estimate(
    shape: Shape,
    trainable: int,
    full: bool,
    precision: str,
    batch: int,
    prompt: int,
    completion: int,
    gpus: int = 1,
    activation_factor: float = 1.0,
) -> Estimate:
    """Peak bytes per GPU of a GRPO job: its scoring pass (the module docstring says why
    the rollouts never exceed it)."""
    tokens = prompt + completion
    act = 2 if precision == "bf16" else 4
    step = train_estimate(
        shape, trainable, full, precision, batch, tokens, gpus, False, activation_factor
    )
    logits = batch * tokens * shape.vocab * act + batch * completion * shape.vocab * 12
    return Estimate(step.weights, step.trainable_states, step.activations, logits)


def eval_estimate(
    shape: Shape, precision: str, batch: int, prompt: int, new: int, gpus: int = 1
) -> Estimate:
    """Peak bytes per GPU of an evaluation job (the model spread over ``gpus``)."""
    act = 2 if precision == "bf16" else 4
    weights = shape.parameters() * act // gpus
    cache = batch * (prompt + new) * shape.layers * 2 * shape.kv * act // gpus
    return Estimate(weights, 0, cache, batch * shape.vocab * 4)


def host_bytes(shape: Shape, precision: str, processes: int = 1) -> int:
    """Host memory of a job: each process's copy of the weights while loading, and runtime."""
    return processes * (shape.parameters() * (2 if precision == "bf16" else 4) + HOST_RUNTIME)


def gpus_needed(estimate_of, capacity: int, start: int = 1, most: int = 64) -> int | None:
    """The fewest GPUs (a power of two from ``start``) for which ``estimate_of(n)`` fits."""
    n = start
    while n <= most:
        if estimate_of(n).total <= capacity:
            return n
        n *= 2
    return None


def gib(n: int) -> str:
    return f"{n / GIB:.1f} GiB" if n < 100 * GIB else f"{math.ceil(n / GIB)} GiB"


def for_training(
    settings, shape: Shape, tokens: int, gpus: int, supervised: int | None = None, grpo=None
) -> Estimate | None:
    """The estimate of one training run (``TrainSettings``) on ``gpus`` processes, None when
    its method cannot count its trainable parameters (``supervised``: a row's most supervised
    tokens, when known; only ``logits: supervised`` runs use it; ``grpo``: a GRPO run's
    settings, ``GRPOSettings`` or the like, whose lengths replace ``tokens``)."""
    from steering.methods import get_method

    method = get_method(settings.method)
    trainable = method.estimate(shape, settings.options, settings.steering)
    if trainable is None:
        return None
    full = trainable == shape.parameters() and method.shardable
    if grpo is not None:
        return grpo_estimate(
            shape,
            trainable,
            full,
            settings.precision,
            settings.bs,
            grpo.max_prompt_length,
            grpo.max_completion_length,
            gpus,
            method.activation_factor,
        )
    sharded = getattr(settings, "sharding", "none") == "fsdp"
    return train_estimate(
        shape,
        trainable,
        full,
        settings.precision,
        settings.bs,
        tokens,
        gpus,
        sharded,
        method.activation_factor,
        supervised if getattr(settings, "logits", "supervised") == "supervised" else None,
    )


def refuse_if_too_big(
    settings,
    shape: Shape,
    tokens: int,
    gpus: int,
    capacity: int,
    supervised: int | None = None,
    grpo=None,
) -> Estimate:
    """The estimate; ValueError, with the numbers and the fix, when it exceeds ``capacity``
    bytes per GPU."""
    from steering.methods import get_method

    found = for_training(settings, shape, tokens, gpus, supervised, grpo)
    if found is None or found.total <= capacity:
        return found
    method = get_method(settings.method)
    what = f"training {method.name} on {shape.model_type} of {shape.parameters() / 1e9:.1f} B"
    bs, accum = settings.bs, getattr(settings, "grad_accum", 2)
    if grpo is not None:
        raise ValueError(
            f"GRPO {what} parameters under --precision {settings.precision}, batch {bs}, "
            f"prompts of {grpo.max_prompt_length} and completions of "
            f"{grpo.max_completion_length} tokens, needs ~{gib(found.total)} per GPU "
            f"({found.describe()} GiB) and the GPU has "
            f"{gib(capacity)}; lower --bs (rows per scoring pass) or --max-completion-length"
        )
    head = (
        f"{what} parameters under --precision {settings.precision}, batch {bs} x {tokens} "
        f"tokens, needs ~{gib(found.total)} per GPU ({found.describe()} GiB) and the GPU has "
        f"{gib(capacity)}"
    )
    if method.shardable:
        p = shape.parameters()
        n = gpus_needed(
            lambda k: train_estimate(shape, p, True, settings.precision, bs, tokens, k, True),
            capacity,
            start=2,
        )
        fix = (
            f"set gpus_per_train: {n} and sharding: fsdp (--sharding fsdp under torchrun "
            f"--nproc-per-node {n})"
            if n
            else "it does not fit on 64 GPUs either: use a method that trains less"
        )
    elif bs > 1:
        fix = (
            f"split the batch: bs {bs // 2} and grad_accum {accum * 2} (--bs {bs // 2} "
            f"--grad-accum {accum * 2}) train the same {bs * accum} rows a step in less "
            "memory, or use --precision bf16"
        )
    else:
        fix = "use --precision bf16, or a GPU with more memory"
    raise ValueError(f"{head}; {fix}")


def device_capacity(device) -> int:
    """Bytes of memory of a CUDA ``device``, as torch reports them (``GPU_MEMORY``'s unit)."""
    import torch

    return torch.cuda.get_device_properties(device).total_memory


def plan_training(
    settings,
    task,
    supervised: int | None = None,
    device=None,
    capacity: int | None = None,
    grpo=None,
) -> Estimate | None:
    """A training run's per-GPU estimate from its model's config (None without a readable
    one); on a GPU, ValueError before any weight is loaded when it cannot fit.
    ``supervised``: the rows' most supervised tokens, once known (else the max length);
    ``device``: where it trains (default: ``settings.device`` as ``pick_device`` reads it);
    ``capacity``: bytes per GPU to check against (default: the CUDA device's; none on a CPU).
    One process of a torchrun job checks its own share (``WORLD_SIZE`` processes); ``grpo``:
    a GRPO run's settings (``GRPOSettings``)."""
    import os

    from steering.architectures import uses_chat_template

    config = read_config(settings.model_name)
    if config is None:
        return None
    shape = shape_of(config)
    tokens = task.max_length_for(uses_chat_template(shape.model_type))
    gpus = int(os.environ.get("WORLD_SIZE", "1"))
    if capacity is None:
        if device is None:
            from steering.loading.loader import pick_device

            device = pick_device(settings.device)
        if device.type != "cuda":
            return for_training(settings, shape, tokens, gpus, supervised, grpo)
        capacity = device_capacity(device)
    return refuse_if_too_big(settings, shape, tokens, gpus, capacity, supervised, grpo)
