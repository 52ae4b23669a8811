"""Benchmark: the memory plan's estimate (steering/training/memory.py) against the measured
peak, for every method, at a shape.

    python benchmarks/memory_plan.py --device cpu --shape llama-100m [--batch 4 --seq-len 256
        --supervised 64 --logits supervised]

Each (method) row runs in a fresh process: it builds the random-weight model of the shape,
the method's model on it (steering.methods), and runs AdamW training steps on a random batch
whose last ``--supervised`` tokens a row are supervised (the rest a prompt), with the LM head
on those positions alone as training computes it (``--logits all``: on every position).
Measured: on CUDA, ``torch.cuda.max_memory_allocated`` (the estimate without its fixed
overhead, which the allocator's count does not see); on CPU, the peak resident set over the
process's resident set before the model was built (runtime, libraries and allocator caches
make it an upper bound of what the estimate counts). Writes
benchmarks/results/memory_plan_<device>_<shape>.json.
"""

import argparse
import json
import resource
import subprocess
import sys

import harness

METHODS = {
    "steering": {},
    "vector": {"kind": "vector"},
    "lora": {"rank": 8},
    "reft": {"rank": 8},
    "joint": {"lora_rank": 8},
    "full": {},
}


def measure(a) -> dict:
    """One row, in this process (``--one``)."""
    import torch

    from steering.config import SteeringConfig
    from steering.methods import METHODS as REGISTRY
    from steering.training import memory
    from steering.training.logits import SupervisedHead, loss_of

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    method_name = "steering" if a.one == "vector" else a.one
    method = REGISTRY[method_name]
    options = {} if a.one in ("steering", "vector") else dict(METHODS[a.one])
    steering = SteeringConfig(kind="vector") if a.one == "vector" else SteeringConfig()
    options = method.check_options(options)
    precision = "bf16" if a.dtype == "bfloat16" else "fp32"
    base = harness.build_model(a.shape, method.base_dtype(precision), a.device)
    model = method.build(base, options, steering, precision)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-5)
    ids, mask, labels = harness.random_batch(base.config.vocab_size, a.batch, a.seq_len, a.device)
    labels[:, : max(0, a.seq_len - a.supervised)] = -100  # the prompt
    head = SupervisedHead(model) if a.logits == "supervised" else None
    if a.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    autocast = method.autocast(precision)
    for _ in range(a.steps):
        with torch.autocast(a.device, dtype=torch.bfloat16, enabled=autocast):
            inputs = {"input_ids": ids, "attention_mask": mask, "labels": labels}
            loss = loss_of(model, head, inputs).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    shape = memory.shape_of(base.config.to_dict())
    full = method_name == "full"
    n = method.estimate(shape, options, steering if method_name in ("steering", "joint") else None)
    factor = method.activation_factor
    supervised = a.supervised if a.logits == "supervised" else None
    estimate = memory.train_estimate(
        shape, n, full, precision, a.batch, a.seq_len, 1, False, factor, supervised
    )
    if a.device == "cuda":
        measured, counted = torch.cuda.max_memory_allocated(), estimate.total - estimate.overhead
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        measured, counted = peak - before, estimate.total - estimate.overhead
    return {
        "method": a.one,
        "trainable": n,
        "estimate_gib": round(counted / memory.GIB, 3),
        "measured_gib": round(measured / memory.GIB, 3),
        "measured_over_estimate": round(measured / counted, 2),
        "estimate_parts_gib": {
            k: round(v / memory.GIB, 3) for k, v in vars(estimate).items() if isinstance(v, int)
        },
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    harness.add_shape_arguments(p)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument(
        "--supervised", type=int, default=64, help="supervised tokens at the end of each row"
    )
    p.add_argument("--logits", choices=["supervised", "all"], default="supervised")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--one", choices=list(METHODS), help=argparse.SUPPRESS)  # a child process
    harness.add_common_arguments(p, repeats=None)
    a = p.parse_args()
    if a.one:
        print(json.dumps(measure(a)))
        return
    rows = []
    for name in a.methods:
        argv = [sys.executable, __file__, "--one", name, "--shape", a.shape, "--dtype", a.dtype]
        argv += ["--batch", str(a.batch), "--seq-len", str(a.seq_len), "--steps", str(a.steps)]
        argv += ["--device", a.device, "--supervised", str(a.supervised), "--logits", a.logits]
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{name}: {done.stderr[-2000:]}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    columns = ["method", "trainable", "estimate_gib", "measured_gib", "measured_over_estimate"]
    harness.print_table(rows, columns)
    harness.write_result(
        harness.result_path(a.out, "memory_plan", a.device, a.shape),
        "memory plan: estimated vs measured peak memory of training, per method",
        {k: v for k, v in vars(a).items() if k not in ("out", "one")},
        rows,
    )


if __name__ == "__main__":
    main()
