"""Benchmark: a steering training step against a PEFT LoRA step on the same model and batch.

    python benchmarks/lora_step.py [--shape llama-100m --dtype float32 --batch 4 --seq-len 256]
    python benchmarks/lora_step.py --shape llama-3.2-1b --dtype bfloat16 --batch 8  # GPU

Two copies of one random-weight Llama (built from its config) take the same batch, forward +
backward of the LM loss, each as its method trains:
- steering: rank-r SiLU adapter after every block (``SteeredModel``), adapter-only gradients;
- LoRA: PEFT LoRA r (alpha = r, dropout 0) on the seven projections, as the baseline of the
  paper's tables (``steering.methods.lora.add_lora``), LoRA-only gradients.
Both start as exact no-ops (W_up = 0, LoRA B = 0), so the two losses must agree (checked).
Target: steering's step time at most LoRA's.
Writes benchmarks/results/lora_step_<cpu|gpu>_<shape>.json.
"""

import argparse
import copy

import harness

from steering import SteeredModel, SteeringConfig
from steering.methods import METHODS
from steering.methods.lora import add_lora


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    harness.add_shape_arguments(p)
    p.add_argument("--rank", type=int, default=8)
    harness.add_common_arguments(p, repeats=7)
    a = p.parse_args()

    base = harness.build_model(a.shape, a.dtype, a.device)
    lora = add_lora(copy.deepcopy(base), a.rank)
    steered = SteeredModel(base, SteeringConfig(rank=a.rank))

    batch = harness.random_batch(base.config.vocab_size, a.batch, a.seq_len, a.device)

    def step(model):
        return harness.training_step(harness.lm_step, model, batch)

    timing = harness.interleaved(
        {"steering": step(steered), "lora": step(lora)}, a.repeats, a.device
    )
    losses, best = timing.values, timing.bests()
    harness.cross_entropy_check(losses["steering"], losses["lora"], "steering vs LoRA")
    ratio = timing.ratio("steering", "lora")
    row = {
        "shape": a.shape,
        "dtype": a.dtype,
        "batch": f"{a.batch}x{a.seq_len}",
        "steering_params": steered.num_trainable_parameters(),
        "lora_params": METHODS["lora"].trainable_parameters(lora),
        "steering_s": round(best["steering"], 6),
        "lora_s": round(best["lora"], 6),
        "ratio": round(ratio, 3),
    }
    harness.print_table([row], list(row))
    print(f"steering / LoRA = {ratio:.3f} (target <= 1)")
    harness.write_result(
        harness.result_path(a.out, "lora_step", a.device, a.shape),
        "training step: post-block steering r=8 vs PEFT LoRA r=8 on the seven projections",
        {k: v for k, v in vars(a).items() if k != "out"},
        [row],
        target=1.0,
        met=ratio <= 1.0,
        times_s=timing.times,
    )


if __name__ == "__main__":
    main()
