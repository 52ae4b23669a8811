"""Benchmark: a steering training step under each precision, and the bf16 policy's dtypes.

    python benchmarks/precision_step.py --device cuda --shape llama-3.2-1b --batch 8

Three models of one random-weight Llama (built from its config) with post-block steering, as
``--precision`` builds them (steering/runtime/precision.py): fp32 (everything float32), tf32 (the
same with TF32 matmuls; on a CPU the same as fp32) and bf16 (the base in bfloat16, the
adapters in float32). Each takes the same batch: forward, backward of the LM loss, AdamW
step. Reported: seconds per step and tokens/s per precision, the bf16 / fp32 and
tf32 / fp32 ratios, and the check that under bf16 every trainable tensor and its gradient
are float32 and every frozen one bfloat16. Writes
benchmarks/results/precision_step_<cpu|gpu>_<shape>.json.
"""

import argparse

import harness
import torch

from steering import SteeredModel, SteeringConfig
from steering.runtime.precision import apply, base_dtype, trainable_dtype


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    harness.add_shape_arguments(p, dtype=None)  # one model per precision
    p.add_argument("--rank", type=int, default=8)
    harness.add_common_arguments(p, repeats=5)
    a = p.parse_args()

    models, optimizers = {}, {}
    for precision in ("fp32", "tf32", "bf16"):
        base = harness.build_model(a.shape, base_dtype(precision), a.device)
        model = SteeredModel(base, SteeringConfig(rank=a.rank), trainable_dtype(precision))
        models[precision] = model
        trainable = [q for q in model.parameters() if q.requires_grad]
        optimizers[precision] = torch.optim.AdamW(trainable, lr=1e-4)
    ids, mask, labels = harness.random_batch(
        models["fp32"].config.vocab_size, a.batch, a.seq_len, a.device
    )

    def step(precision):
        model, optimizer = models[precision], optimizers[precision]

        def run() -> float:
            apply(precision, torch.device(a.device))  # TF32 on or off for this side
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            return loss.item()

        return run

    timing = harness.interleaved({k: step(k) for k in models}, a.repeats, a.device)
    apply("fp32", torch.device(a.device))
    bf16 = models["bf16"]
    loss = bf16(input_ids=ids, attention_mask=mask, labels=labels).loss
    loss.backward()
    trainable = [(n, q) for n, q in bf16.named_parameters() if q.requires_grad]
    dtypes_ok = all(
        q.dtype == torch.float32 and q.grad.dtype == torch.float32 for _, q in trainable
    )
    frozen_ok = all(q.dtype == torch.bfloat16 for q in bf16.parameters() if not q.requires_grad)
    best, tokens = timing.bests(), a.batch * a.seq_len
    row = {
        "shape": a.shape,
        "batch": f"{a.batch}x{a.seq_len}",
        **{f"{k}_s": round(v, 6) for k, v in best.items()},
        **{f"{k}_tokens_per_s": round(tokens / v, 1) for k, v in best.items()},
        "bf16_over_fp32": round(timing.ratio("bf16", "fp32"), 3),
        "tf32_over_fp32": round(timing.ratio("tf32", "fp32"), 3),
        "bf16_trainables_float32": dtypes_ok,
        "bf16_frozen_bfloat16": frozen_ok,
    }
    harness.print_table([row], list(row))
    if not (dtypes_ok and frozen_ok):
        raise SystemExit("the bf16 policy's dtypes are wrong: see the row above")
    harness.write_result(
        harness.result_path(a.out, "precision_step", a.device, a.shape),
        "steering training step per precision; bf16 keeps trainable tensors in float32",
        {k: v for k, v in vars(a).items() if k != "out"},
        [row],
        times_s=timing.times,
    )


if __name__ == "__main__":
    main()
