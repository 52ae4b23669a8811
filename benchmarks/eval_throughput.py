"""Benchmark: batched evaluation vs a one-prompt-at-a-time loop (same prompts, same outputs).

    python benchmarks/eval_throughput.py [--hidden-size 64 --layers 4 --n 64 --batch-size 16]

Both sides decode the same task prompts (generated data) greedily with a steered tiny model;
the outputs are asserted identical and the ratio of the two wall times is recorded per dataset
(both measured in this run, interleaved, best of --repeats). Writes
benchmarks/results/eval_throughput.json.
"""

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from steering import SteeredModel, SteeringConfig  # noqa: E402
from steering.data import encode_prompt  # noqa: E402
from steering.generation import greedy_generate  # noqa: E402
from steering.provenance import environment  # noqa: E402
from steering.tasks import get_task  # noqa: E402
from steering.tiny import build_tokenizer, tiny_model  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--arch", default="llama")
    p.add_argument("--hidden-size", type=int, default=64)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--datasets", nargs="+", default=["BoolQ", "ListOps", "GSM8K"])
    p.add_argument("--n", type=int, default=64, help="prompts per dataset")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "eval_throughput.json"))
    a = p.parse_args()

    torch.manual_seed(0)
    tokenizer = build_tokenizer()
    base = tiny_model(
        a.arch,
        vocab_size=len(tokenizer),
        hidden_size=a.hidden_size,
        num_layers=a.layers,
        initializer_range=0.3,
    )
    model = SteeredModel(base, SteeringConfig())
    with torch.no_grad():
        for prm in model.adapters.parameters():
            prm.normal_(0, 0.05)
    rows_out = []
    for name in a.datasets:
        task = get_task(name)
        rows = task.make_splits(task.synthetic(seed=0, scale=1.0))["test"]
        rows = rows.select(range(min(a.n, len(rows))))
        prompts = [encode_prompt(tokenizer, task.prompt(r)) for r in rows]
        args = (prompts, task.max_new_tokens, tokenizer.pad_token_id, tokenizer.eos_token_id)
        best = {"batched": float("inf"), "one_at_a_time": float("inf")}
        outputs = {}
        for _ in range(a.repeats):  # interleaved so drift on a noisy machine hits both sides
            for side, bs in (("batched", a.batch_size), ("one_at_a_time", 1)):
                g = greedy_generate(model, *args, batch_size=bs, progress=False)
                best[side] = min(best[side], g.wall_s)
                outputs[side] = (g.tokens, g.num_generated)
        assert outputs["batched"] == outputs["one_at_a_time"], f"{name}: batched outputs differ"
        tokens = outputs["batched"][1]
        rows_out.append(
            {
                "dataset": task.name,
                "prompts": len(prompts),
                "mean_prompt_tokens": round(sum(map(len, prompts)) / len(prompts), 1),
                "max_new_tokens": task.max_new_tokens,
                "tokens_generated": tokens,
                "batched_s": round(best["batched"], 4),
                "one_at_a_time_s": round(best["one_at_a_time"], 4),
                "batched_tokens_per_s": round(tokens / best["batched"], 1),
                "one_at_a_time_tokens_per_s": round(tokens / best["one_at_a_time"], 1),
                "speedup": round(best["one_at_a_time"] / best["batched"], 2),
                "outputs_identical": True,
            }
        )
    total = {
        k: sum(r[k] for r in rows_out) for k in ("tokens_generated", "batched_s", "one_at_a_time_s")
    }
    result = {
        "question": "evaluation throughput: batched vs one prompt at a time, same outputs",
        "command": " ".join(["python", *sys.argv]),
        "setting": {k: v for k, v in vars(a).items() if k != "out"},
        "rows": rows_out,
        "overall_speedup": round(total["one_at_a_time_s"] / total["batched_s"], 2),
        **environment(),
    }
    print(
        f"{'dataset':<14}{'prompt tok':>11}{'new tok':>8}{'batched t/s':>13}{'single t/s':>12}"
        f"{'speedup':>9}"
    )
    for r in rows_out:
        print(
            f"{r['dataset']:<14}{r['mean_prompt_tokens']:>11}{r['max_new_tokens']:>8}"
            f"{r['batched_tokens_per_s']:>13}{r['one_at_a_time_tokens_per_s']:>12}{r['speedup']:>8}x"
        )
    print(
        f"overall {result['overall_speedup']}x (target >= 5x on CPU at batch {a.batch_size}); "
        "outputs identical"
    )
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
