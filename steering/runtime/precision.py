"""Numeric precision of a run, one setting for every method (``--precision``, config
``precision``).

- ``fp32``: everything in float32, the protocol's setting (the default).
- ``tf32``: float32 weights, TF32 matrix products where the GPU has them (Ampere and later);
  on a CPU the same as fp32.
- ``bf16``: the frozen base held in bfloat16 and every trainable tensor (steering adapters
  and vectors, LoReFT, LoRA, joint) in float32: the trainable part is computed in float32
  and its output cast back to the stream's dtype, AdamW updates float32 weights, and
  checkpoints store float32. Full fine-tuning, whose trainable tensors are the base, keeps
  float32 master weights and trains under bfloat16 autocast.

Each method says which precisions it supports (``Method.precisions``) and what its base
model is loaded in (``Method.base_dtype``). The old ``--dtype`` maps onto this (``resolve``).
"""

from __future__ import annotations

PRECISIONS = ("fp32", "tf32", "bf16")
FROM_DTYPE = {"float32": "fp32", "bfloat16": "bf16"}  # the old --dtype values


def resolve(precision: str | None, dtype: str | None = None) -> str:
    """The run's precision from ``--precision`` and the older ``--dtype`` (either, or both
    when they agree); ``fp32`` when neither is given."""
    if precision is not None and precision not in PRECISIONS:
        raise ValueError(f"--precision {precision!r} is invalid; choose one of {list(PRECISIONS)}")
    if dtype is not None and dtype not in FROM_DTYPE:
        raise ValueError(
            f"--dtype {dtype} is no longer offered: it trained half-precision weights without "
            "loss scaling. Use --precision bf16 (a bfloat16 base, float32 trainable tensors) "
            "or --precision fp32"
        )
    if precision is not None and dtype is not None and FROM_DTYPE[dtype] != precision:
        raise ValueError(
            f"--dtype {dtype} and --precision {precision} disagree; give --precision alone"
        )
    return precision or (FROM_DTYPE[dtype] if dtype else "fp32")


def base_dtype(precision: str) -> str:
    """The dtype a frozen base model is held in under ``precision``."""
    return "bfloat16" if precision == "bf16" else "float32"


def trainable_dtype(precision: str):
    """The dtype trainable tensors are made in: float32 under bf16, else their layer's."""
    import torch

    return torch.float32 if precision == "bf16" else None


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX-512 BF16 or AMX, as oneDNN sees it);
    without, torch emulates bfloat16 matmuls, far slower than float32."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch built without oneDNN
        return False


SLOW_CPU_BF16 = (
    "warning: --precision bf16 on a CPU without native bfloat16 (AVX-512 BF16 or AMX): its "
    "bfloat16 matmuls are emulated, ~38x slower than fp32 for a SmolLM2-135M training step on "
    "an AVX2 CPU (docs/decisions.md); use --precision fp32 here"
)


def apply(precision: str, device) -> None:
    """Check ``precision`` against ``device`` and set the process-wide matmul mode; warn (on
    stderr) when bf16 would run emulated on a CPU."""
    import sys

    import torch

    if getattr(device, "type", str(device)) != "cuda":
        if precision == "bf16" and not cpu_has_bf16():
            print(SLOW_CPU_BF16, file=sys.stderr)
        return
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        name = torch.cuda.get_device_name(device)
        raise ValueError(
            f"--precision bf16: {name} ({device}) has no bfloat16 support; use --precision "
            "fp32 or tf32"
        )
    set_tf32(precision == "tf32")


def set_tf32(enabled: bool, backends=None) -> None:
    """TF32 matrix products (and cuDNN convolutions) on or off, process-wide.

    torch 2.9+ has ``fp32_precision`` ("tf32" / "ieee") per backend and deprecates the
    ``allow_tf32`` flags; once the new setting is used, reading an old flag raises. So the new
    API where it exists, the old flags only on older torch, never both. ``backends``:
    ``torch.backends`` (another object in tests)."""
    if backends is None:
        import torch

        backends = torch.backends
    try:
        backends.cuda.matmul.fp32_precision  # noqa: B018 - probes for the torch 2.9+ API
    except AttributeError:
        backends.cuda.matmul.allow_tf32 = enabled
        backends.cudnn.allow_tf32 = enabled
        return
    mode = "tf32" if enabled else "ieee"
    backends.cuda.matmul.fp32_precision = mode
    backends.cudnn.conv.fp32_precision = mode
