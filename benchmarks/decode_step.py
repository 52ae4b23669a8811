"""Benchmark: one greedy decoding step of evaluation against the machine's bounds.

    python benchmarks/decode_step.py [--model .cache/models/smollm2-135m
        --data-dir data/ARC_Challenge --batches 8 16 32 64 --new-tokens 32]

A decoding step reads every weight once and does 2 FLOPs per weight per row, so it can take
no less than the larger of two bounds: the weights' bytes over the memory bandwidth (what a
plain ``tensor.sum()`` of that many bytes reaches here) and the step's FLOPs over the
machine's matmul peak (a large square fp32 matmul). The step itself is timed as the evaluator
decodes (``steering.evaluation.generation.greedy_generate``: the real model steered after
every block, real ARC prompts left-padded, greedy, the KV cache): (time for N new tokens -
time for 1) / (N - 1), so the prefill drops out. Beside it, the same step's matmuls alone
(``F.linear`` over every linear layer of the model at the step's batch, no attention, no
cache, no Python between layers): what the BLAS kernels cost at that shape, a floor no
decoding loop goes under without other kernels. Per batch size: the step with HF's dynamic
cache (today's default) and with its static cache (``--decode-cache static``), their
generated tokens checked equal, and ``step_over_bound`` = step / bandwidth bound, the
issue's figure. ``--profile`` adds where one step's time goes (torch.profiler, by operator
family); ``--compile`` times the static cache with ``torch.compile`` of the decoding step
(``--compile-decoding``) at the first batch size, with its compile time.
Writes benchmarks/results/decode_<cpu|gpu>_<model>.json.
"""

import argparse
import time
from pathlib import Path

import harness
import torch
import torch.nn.functional as F
from torch import nn

from steering import SteeredModel, SteeringConfig
from steering.data import encode_prompt
from steering.evaluation.generation import greedy_generate
from steering.loading.loader import load_base_model, load_tokenizer
from steering.tasks import get_task

# torch.profiler operator names -> the part of a decoding step they are
FAMILIES = {
    "matmul (weights)": ("aten::mm", "aten::addmm", "aten::bmm", "aten::linear", "aten::matmul"),
    "attention": ("aten::_scaled_dot_product", "aten::scaled_dot_product_attention"),
    "KV cache (concatenate / write)": ("aten::cat", "aten::index_copy", "aten::index_put"),
}


def family(op: str) -> str:
    return next((f for f, names in FAMILIES.items() if op.startswith(names)), "other")


def weight_bytes(model: nn.Module) -> int:
    """Bytes of every distinct parameter (a tied embedding counted once)."""
    seen = {p.data_ptr(): p.numel() * p.element_size() for p in model.parameters()}
    return sum(seen.values())


def linears_floor(base: nn.Module, batch: int, dtype, device: str):
    """A side: every linear layer's weights applied to ``batch`` rows, as one decoding step
    applies them (the LM head included); returns the FLOPs it does."""
    layers = [m for m in base.modules() if isinstance(m, nn.Linear)]
    inputs = {
        n: torch.randn(batch, n, dtype=dtype, device=device)
        for n in {m.in_features for m in layers}
    }

    @torch.inference_mode()
    def run() -> int:
        for m in layers:
            F.linear(inputs[m.in_features], m.weight)
        return sum(2 * batch * m.weight.numel() for m in layers)

    return run


def matmul_peak(dtype, device: str, n: int = 2048) -> float:
    """FLOP/s of a large square matmul (best of 5): the compute roof."""
    a = torch.randn(n, n, dtype=dtype, device=device)
    b = torch.randn(n, n, dtype=dtype, device=device)
    best = float("inf")
    for _ in range(6):
        harness.synchronize(device)
        start = time.perf_counter()
        a @ b
        harness.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", default=".cache/models/smollm2-135m", help="model directory")
    p.add_argument("--data-dir", default="data/ARC_Challenge", help="ARC-Challenge rows")
    p.add_argument("--dtype", default="float32", choices=list(harness.DTYPES))
    p.add_argument("--batches", type=int, nargs="+", default=[8, 16, 32, 64])
    p.add_argument("--new-tokens", type=int, default=32, help="N: tokens decoded per timing")
    p.add_argument("--caches", nargs="+", default=["dynamic", "static"])
    p.add_argument("--profile", action="store_true", help="profile one step at the first batch")
    p.add_argument("--compile", action="store_true", help="also time --compile-decoding")
    harness.add_common_arguments(p, repeats=3)
    a = p.parse_args()

    torch.manual_seed(0)
    dtype = harness.DTYPES[a.dtype]
    tokenizer = load_tokenizer(a.model)
    base = load_base_model(a.model, dtype=a.dtype, device=a.device)
    model = SteeredModel(base, SteeringConfig()).eval()
    with torch.no_grad():  # a trained-looking adapter, so steering changes the outputs
        for prm in model.adapters.parameters():
            prm.normal_(0, 0.02)
    task = get_task("ARC_Challenge")
    rows = list(task.load(data_dir=a.data_dir)["test"])
    prompts = [encode_prompt(tokenizer, task.prompt(r), False) for r in rows[: max(a.batches)]]
    nbytes = weight_bytes(base)
    stream = torch.empty(nbytes // dtype.itemsize, dtype=dtype, device=a.device).uniform_()
    peak = matmul_peak(dtype, a.device)

    def decode(batch: int, new: int, cache: str, compile_: bool = False):
        def run():
            eos = []  # decode exactly ``new`` tokens: no row stops early
            return greedy_generate(
                model,
                prompts[:batch],
                new,
                tokenizer.pad_token_id,
                eos_token_id=eos,
                batch_size=batch,
                progress=False,
                cache=cache,
                compile=compile_,
            ).tokens

        return run

    n = a.new_tokens
    out_rows, profile, compiled = [], None, None
    for batch in a.batches:
        sides = {
            "bandwidth": lambda: float(stream.sum()),
            "linears": linears_floor(base, batch, dtype, a.device),
        }
        for cache in a.caches:
            sides[f"{cache}_1"] = decode(batch, 1, cache)
            sides[f"{cache}_N"] = decode(batch, n, cache)
        timing = harness.interleaved(sides, a.repeats, a.device)
        best = timing.bests()
        flops = timing.values["linears"]
        bandwidth_s = best["bandwidth"]
        row = {
            "batch": batch,
            "bandwidth_bound_ms": round(bandwidth_s * 1e3, 4),
            "flop_bound_ms": round(flops / peak * 1e3, 4),
            "linears_ms": round(best["linears"] * 1e3, 4),
        }
        reference = timing.values[f"{a.caches[0]}_N"]
        for cache in a.caches:
            step = (best[f"{cache}_N"] - best[f"{cache}_1"]) / (n - 1)
            row[f"step_ms_{cache}"] = round(step * 1e3, 4)
            row[f"step_over_bound_{cache}"] = round(step / bandwidth_s, 2)
            row[f"step_over_linears_{cache}"] = round(step / best["linears"], 2)
            row[f"tokens_per_s_{cache}"] = round(batch / step, 1)
            row[f"same_tokens_{cache}"] = timing.values[f"{cache}_N"] == reference
        out_rows.append(row)
        print(row, flush=True)

    first = a.batches[0]
    if a.profile:
        from torch.profiler import profile as profiler

        per_family = {}
        for new, sign in ((n, 1), (1, -1)):
            decode(first, new, a.caches[0])()  # warm
            with profiler() as prof:
                decode(first, new, a.caches[0])()
            for e in prof.key_averages():
                f = family(e.key)
                per_family[f] = per_family.get(f, 0.0) + sign * e.self_cpu_time_total
        total = sum(per_family.values())
        profile = {
            "batch": first,
            "cache": a.caches[0],
            "share": {f: round(t / total, 3) for f, t in sorted(per_family.items())},
        }
        print(profile, flush=True)
    if a.compile:
        start = time.perf_counter()
        decode(first, n, "static", True)()
        compile_s = time.perf_counter() - start
        sides = {"compiled_1": decode(first, 1, "static", True)}
        sides["compiled_N"] = decode(first, n, "static", True)
        timing = harness.interleaved(sides, a.repeats, a.device, warmup=2)
        best = timing.bests()
        step = (best["compiled_N"] - best["compiled_1"]) / (n - 1)
        compiled = {
            "batch": first,
            "first_call_s": round(compile_s, 1),
            "step_ms": round(step * 1e3, 2),
            "step_over_bound": round(step / (out_rows[0]["bandwidth_bound_ms"] / 1e3), 2),
            "same_tokens": timing.values["compiled_N"] == decode(first, n, a.caches[0])(),
        }
        print(compiled, flush=True)

    harness.write_result(
        harness.result_path(a.out, "decode", a.device, Path(a.model).name),
        "one greedy decoding step of the steered real model on real ARC prompts, against the "
        "bandwidth bound (weights read once) and the same step's matmuls alone",
        {k: v for k, v in vars(a).items() if k != "out"},
        out_rows,
        weight_bytes=nbytes,
        bandwidth_gb_s=round(nbytes / min(r["bandwidth_bound_ms"] for r in out_rows) / 1e6, 1),
        matmul_peak_gflop_s=round(peak / 1e9, 1),
        profile=profile,
        compiled=compiled,
    )


if __name__ == "__main__":
    main()
