"""Benchmark: what post-block steering adds to a training step of the frozen base.

    python benchmarks/steering_overhead.py [--shape llama-100m --batch 4 --seq-len 256]
    python benchmarks/steering_overhead.py --shape llama-3.2-1b --dtype bfloat16 --batch 8  # GPU

Two copies of one random-weight Llama (built from its config) take the same batch:
- base: the frozen model, forward + backward of the LM loss down to the input embeddings (no
  parameter is trainable, so the backward needs an input that requires grad);
- steering: the same, with a rank-r SiLU adapter after every block (adapter-only gradients).
Both run the backward through every block, so the ratio isolates the adapters' cost. Fresh
adapters are exact no-ops, so the two losses must agree (checked). Targets: steering / base at
most 1.10 on CPU at a ~100M shape, at most 1.05 on a GPU at the Llama-3.2-1B shape in bf16
(batch 8 x 256). Writes benchmarks/results/steering_overhead_<cpu|gpu>_<shape>.json.
"""

import argparse
import copy

import harness

from steering import SteeredModel, SteeringConfig


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    harness.add_shape_arguments(p)
    p.add_argument("--rank", type=int, default=8)
    harness.add_common_arguments(p, repeats=7)
    a = p.parse_args()

    base = harness.build_model(a.shape, a.dtype, a.device)
    steered = SteeredModel(copy.deepcopy(base), SteeringConfig(rank=a.rank))
    base.requires_grad_(False)

    batch = harness.random_batch(base.config.vocab_size, a.batch, a.seq_len, a.device)

    def step(model):
        return harness.training_step(harness.lm_step_to_embeddings, model, batch)

    timing = harness.interleaved(
        {"base": step(base), "steering": step(steered)}, a.repeats, a.device
    )
    losses, best = timing.values, timing.bests()
    harness.cross_entropy_check(losses["base"], losses["steering"], "base vs steering")
    ratio = timing.ratio("steering", "base")
    tokens = a.batch * a.seq_len
    row = {
        "shape": a.shape,
        "parameters": harness.count_parameters(base),
        "adapter_parameters": steered.num_trainable_parameters(),
        "dtype": a.dtype,
        "batch": f"{a.batch}x{a.seq_len}",
        "base_s": round(best["base"], 6),
        "steering_s": round(best["steering"], 6),
        "base_tokens_per_s": round(tokens / best["base"], 1),
        "steering_tokens_per_s": round(tokens / best["steering"], 1),
        "ratio": round(ratio, 3),
    }
    harness.print_table([row], list(row))
    target = 1.05 if a.device.startswith("cuda") else 1.10
    print(f"steering / frozen base = {ratio:.3f} (target <= {target})")
    harness.write_result(
        harness.result_path(a.out, "steering_overhead", a.device, a.shape),
        "training step: post-block steering over the frozen base with no adapters",
        {k: v for k, v in vars(a).items() if k != "out"},
        [row],
        target=target,
        met=ratio <= target,
        times_s=timing.times,
    )


if __name__ == "__main__":
    main()
