"""The measuring harness the benchmark scripts share: model shapes built from configs with
random weights, interleaved timing, the training steps being compared, and the JSON
result with the machine, the versions and the exact command.

Every comparison is a ratio of two sides timed in the same run: the sides alternate within
each round, so drift on a noisy machine hits both, and the figure is the median over rounds of
the two sides' ratio in that round; absolute times reported are each side's best.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from steering.runtime.provenance import environment  # noqa: E402

RESULTS = Path(__file__).parent / "results"
REPOSITORY = Path(__file__).resolve().parent.parent


def portable(value):
    """``value`` with this machine's paths made repository-relative (the repository's own
    files as ``data/...``, its neighbours such as ``../shared`` as ``../...``), so that a
    committed result names no machine's directories."""
    if isinstance(value, dict):
        return {k: portable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(portable(v) for v in value)
    if isinstance(value, str):
        return value.replace(f"{REPOSITORY}/", "").replace(f"{REPOSITORY.parent}/", "../")
    return value


# Llama shapes by name (LlamaConfig fields). The two Llama-3 ones follow the published
# configs of Llama-3.2-1B and Llama-3.1-8B; "llama-100m" is a ~100M-parameter shape that fits a
# CPU benchmark; "llama-tiny" keeps the scripts' smoke tests fast.
SHAPES = {
    "llama-tiny": dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=512,
        tie_word_embeddings=True,
    ),
    "llama-100m": dict(
        hidden_size=768,
        intermediate_size=2048,
        num_hidden_layers=12,
        num_attention_heads=12,
        num_key_value_heads=4,
        vocab_size=32000,
        tie_word_embeddings=True,
    ),
    "llama-3.2-1b": dict(
        hidden_size=2048,
        intermediate_size=8192,
        num_hidden_layers=16,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=64,
        vocab_size=128256,
        tie_word_embeddings=True,
        rope_theta=500000.0,
    ),
    "llama-3.1-8b": dict(
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=128,
        vocab_size=128256,
        tie_word_embeddings=False,
        rope_theta=500000.0,
    ),
}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def add_shape_arguments(
    parser, shape: str = "llama-100m", dtype: str | None = "float32", batch: int = 4
) -> None:
    """--shape, --dtype (unless None: the benchmark sets dtypes itself), --batch, --seq-len:
    the training batch every training benchmark takes."""
    parser.add_argument("--shape", default=shape, choices=list(SHAPES))
    if dtype is not None:
        parser.add_argument("--dtype", default=dtype, choices=list(DTYPES))
    parser.add_argument("--batch", type=int, default=batch)
    parser.add_argument("--seq-len", type=int, default=256)


def add_common_arguments(parser, repeats: int | None) -> None:
    """--repeats (unless None), --device and --out, the same in every benchmark."""
    if repeats is not None:
        parser.add_argument("--repeats", type=int, default=repeats, help="timed rounds; best kept")
    parser.add_argument("--device", default=default_device())
    parser.add_argument(
        "--out", default=None, help="result JSON (default: results/<name>_<cpu|gpu>_<shape>.json)"
    )


def build_model(shape: str, dtype: str, device: str, seed: int = 0):
    """A Llama of ``shape`` with random weights (HF's own init), built directly on ``device``."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    if shape not in SHAPES:
        raise SystemExit(f"unknown shape {shape!r}; choose one of {list(SHAPES)}")
    torch.manual_seed(seed)
    config = LlamaConfig(**SHAPES[shape], attn_implementation="sdpa")
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=DTYPES[dtype])
    return model.train()


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


def random_batch(vocab_size: int, batch: int, seq_len: int, device: str, seed: int = 0):
    """Token ids (B, S), an all-ones mask and labels = ids (every position supervised)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab_size, (batch, seq_len), generator=g).to(device)
    return ids, torch.ones_like(ids), ids.clone()


def lm_step(model, ids, mask, labels) -> float:
    """Forward + backward of the causal-LM loss; gradients go where ``requires_grad`` says."""
    loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    loss.backward()
    return float(loss.detach())


def lm_step_to_embeddings(model, ids, mask, labels) -> float:
    """As ``lm_step``, but fed embeddings that require grad, so the backward runs through every
    block even when no parameter is trainable (the frozen base's step)."""
    inner = model.base_model if hasattr(model, "steering_config") else model  # SteeredModel
    embeds = inner.get_input_embeddings()(ids).detach().requires_grad_(True)  # (B, S, H)
    loss = model(inputs_embeds=embeds, attention_mask=mask, labels=labels).loss
    loss.backward()
    return float(loss.detach())


def training_step(step: Callable, model, batch: tuple) -> Callable[[], float]:
    """A side for ``interleaved``: clear ``model``'s gradients, then ``step(model, *batch)``."""

    def run() -> float:
        zero_grads(model)
        return step(model, *batch)

    return run


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


@dataclass
class Timing:
    """Wall times of each side, one per timed round, and each side's last return value."""

    times: dict[str, list[float]]
    values: dict[str, object]

    def best(self, side: str) -> float:
        return min(self.times[side])

    def bests(self) -> dict[str, float]:
        return {side: min(times) for side, times in self.times.items()}

    def ratio(self, a: str, b: str) -> float:
        """Median over rounds of a's time / b's time in the same round: a burst of load on
        the machine spoils one round's pair, not the figure."""
        return statistics.median(x / y for x, y in zip(self.times[a], self.times[b], strict=True))


def interleaved(
    sides: dict[str, Callable[[], object]], repeats: int, device: str, warmup: int = 1
) -> Timing:
    """Time every side once per round for ``repeats`` rounds after ``warmup`` untimed ones;
    the sides alternate within a round, in reversed order every other round, so neither
    always runs first."""
    times: dict[str, list[float]] = {name: [] for name in sides}
    values: dict[str, object] = {}
    for round_ in range(warmup + repeats):
        order = list(sides) if round_ % 2 == 0 else list(reversed(sides))
        for name in order:
            synchronize(device)
            start = time.perf_counter()
            values[name] = sides[name]()
            synchronize(device)
            if round_ >= warmup:
                times[name].append(time.perf_counter() - start)
    return Timing(times, values)


def zero_grads(model) -> None:
    for p in model.parameters():
        p.grad = None


def result_path(out: str | None, name: str, device: str, shape: str) -> Path:
    """``out``, else ``results/<name>_<cpu|gpu>_<shape>.json`` (one file per kind of row)."""
    if out:
        return Path(out)
    return RESULTS / f"{name}_{'gpu' if device.startswith('cuda') else 'cpu'}_{shape}.json"


def write_result(path: str | Path, question: str, setting: dict, rows: list[dict], **extra):
    """Write the result JSON (question, command, setting, rows, machine, versions) atomically."""
    result = portable(
        {
            "question": question,
            "command": " ".join(["python", *sys.argv]),
            "setting": setting,
            "rows": rows,
            **extra,
            **environment(),
        }
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(path)
    return result


def print_table(rows: list[dict], columns: list[str]) -> None:
    widths = [max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns]
    print("  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True)))
    for r in rows:
        print("  ".join(str(r.get(c, "")).rjust(w) for c, w in zip(columns, widths, strict=True)))


def cross_entropy_check(a: float, b: float, what: str, tol: float = 1e-3) -> None:
    """Both sides of a comparison must compute the same loss, else the timing means nothing."""
    if not abs(a - b) <= tol * max(1.0, abs(a)):
        raise SystemExit(f"{what}: losses differ ({a} vs {b}); the sides do not do the same work")
