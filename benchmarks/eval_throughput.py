"""Benchmark: batched evaluation vs a one-prompt-at-a-time loop (same prompts, same outputs).

    python benchmarks/eval_throughput.py [--hidden-size 64 --layers 4 --n 64 --batch-size 16]

Both sides decode the same task prompts (generated data) greedily with a steered tiny model
(or, with --shape, a full-size random-weight Llama); the ratio of the two wall times is
recorded per dataset (both measured in this run, interleaved, best of --repeats), with the
share of prompts whose outputs agree: all of them in float32 on CPU (checked); in bf16 or on a
GPU, kernels for other batch shapes may round differently and flip a near-tie. Targets: at
least 5x on CPU, 10x on a GPU. Writes
benchmarks/results/eval_throughput_<cpu|gpu>_<shape>.json.
"""

import argparse

import harness
import torch

from steering import SteeredModel, SteeringConfig
from steering.data import encode_prompt
from steering.evaluation.generation import greedy_generate
from steering.loading.tiny import build_tokenizer, tiny_model
from steering.tasks import get_task


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--arch", default="llama", help="tiny model architecture (without --shape)")
    p.add_argument("--shape", choices=list(harness.SHAPES), help="a full-size Llama shape instead")
    p.add_argument("--dtype", default="float32", choices=list(harness.DTYPES))
    p.add_argument("--hidden-size", type=int, default=64)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--datasets", nargs="+", default=["BoolQ", "ListOps", "GSM8K"])
    p.add_argument("--n", type=int, default=64, help="prompts per dataset")
    p.add_argument("--batch-size", type=int, default=16)
    harness.add_common_arguments(p, repeats=5)
    a = p.parse_args()

    torch.manual_seed(0)
    tokenizer = build_tokenizer()
    if a.shape:
        base = harness.build_model(a.shape, a.dtype, a.device).eval()
    else:
        base = tiny_model(
            a.arch,
            vocab_size=len(tokenizer),
            hidden_size=a.hidden_size,
            num_layers=a.layers,
            initializer_range=0.3,
        ).to(a.device, harness.DTYPES[a.dtype])
    model = SteeredModel(base, SteeringConfig())
    with torch.no_grad():
        for prm in model.adapters.parameters():
            prm.normal_(0, 0.05)
    rows_out, timings = [], []
    for name in a.datasets:
        task = get_task(name)
        rows = task.make_splits(task.synthetic(seed=0, scale=1.0))["test"]
        rows = rows.select(range(min(a.n, len(rows))))
        prompts = [encode_prompt(tokenizer, task.prompt(r)) for r in rows]
        args = (prompts, task.max_new_tokens, tokenizer.pad_token_id, tokenizer.eos_token_id)

        def side(batch_size, args=args):
            def run():
                g = greedy_generate(model, *args, batch_size=batch_size, progress=False)
                return g.tokens, g.num_generated

            return run

        timing = harness.interleaved(
            {"batched": side(a.batch_size), "one_at_a_time": side(1)}, a.repeats, a.device
        )
        timings.append(timing)
        outputs, best = timing.values, timing.bests()
        same = sum(
            x == y for x, y in zip(outputs["batched"][0], outputs["one_at_a_time"][0], strict=True)
        ) / len(prompts)
        if same < 1 and a.dtype == "float32" and a.device == "cpu":
            raise SystemExit(f"{name}: batched outputs differ from one at a time")
        tokens = outputs["batched"][1]
        rows_out.append(
            {
                "dataset": task.name,
                "prompts": len(prompts),
                "mean_prompt_tokens": round(sum(map(len, prompts)) / len(prompts), 1),
                "max_new_tokens": task.max_new_tokens,
                "tokens_generated": tokens,
                "batched_s": round(best["batched"], 6),
                "one_at_a_time_s": round(best["one_at_a_time"], 6),
                "batched_tokens_per_s": round(tokens / best["batched"], 1),
                "one_at_a_time_tokens_per_s": round(tokens / best["one_at_a_time"], 1),
                "speedup": round(timing.ratio("one_at_a_time", "batched"), 2),
                "times_s": timing.times,
                "identical_outputs": round(same, 4),
            }
        )
    # All tasks together: per round, the summed times of each side (same tokens on both sides).
    summed = {
        side: [sum(r) for r in zip(*(t.times[side] for t in timings), strict=True)]
        for side in timings[0].times
    }
    total = harness.Timing(summed, {})
    overall = round(total.ratio("one_at_a_time", "batched"), 2)
    target = 10 if a.device.startswith("cuda") else 5
    harness.print_table(
        rows_out,
        ["dataset", "mean_prompt_tokens", "max_new_tokens", "batched_tokens_per_s"]
        + ["one_at_a_time_tokens_per_s", "speedup"],
    )
    same = min(r["identical_outputs"] for r in rows_out)
    print(f"overall {overall}x (target >= {target}x at batch {a.batch_size}); identical {same:.0%}")
    harness.write_result(
        harness.result_path(a.out, "eval_throughput", a.device, a.shape or "tiny"),
        "evaluation throughput: batched vs one prompt at a time, same outputs",
        {k: v for k, v in vars(a).items() if k != "out"},
        rows_out,
        overall_speedup=overall,
        target=target,
        met=overall >= target,
    )


if __name__ == "__main__":
    main()
