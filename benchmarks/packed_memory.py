"""Benchmark: the peak memory of a training step, packed against padded, on the same batch.

    python benchmarks/packed_memory.py [--model .cache/models/smollm2-135m
        --dataset ARC_Challenge --data-dir data/ARC_Challenge --rows 256 --bs 8]

Among the official order's batches of the first ``--rows`` training rows, the one with the
most padded tokens (the step that sets a padded run's peak) is fed to post-block steering
(forward + backward of the LM loss) padded to its longest row (``--no-packing``) and packed
(``steering/training/packing.py``, the default), each in a fresh process: the peak resident
memory of the step over the memory held once the model and batch are ready (``ru_maxrss``;
on a CUDA device ``torch.cuda.max_memory_allocated``), best of ``--repeats``. Packed rows
attend through a block-diagonal mask over the whole packed sequence, which the sdpa and eager
paths materialise (T x T per head) where a padded batch holds B rows of S x S, so packing can
cost memory where FlashAttention's variable-length kernels are not used: this says how much.
Writes benchmarks/results/packed_memory_<cpu|gpu>_<model>.json.
"""

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

import harness

MIB = 2**20


def child(a) -> dict:
    """One step in this process: the memory before and at the peak, in MiB."""
    import torch

    from steering import SteeredModel, SteeringConfig
    from steering.data import Collator, tokenize_split
    from steering.loading.loader import load_base_model, load_tokenizer
    from steering.tasks import get_task
    from steering.training.packing import PackedCollator

    task = get_task(a.dataset)
    split = task.load(data_dir=a.data_dir or f"data/{task.name}")["train"]
    tokenizer = load_tokenizer(a.model)
    features = tokenize_split(task, split, tokenizer)
    rows = [features[i] for i in json.loads(a.batch)]
    collate = PackedCollator() if a.layout == "packed" else Collator(tokenizer.pad_token_id, None)
    batch = {k: v.to(a.device) if hasattr(v, "to") else v for k, v in collate(rows).items()}
    model = SteeredModel(load_base_model(a.model, "float32", a.device).train(), SteeringConfig())
    cuda = a.device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated() / MIB
    else:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    loss = model(**batch).loss
    loss.backward()
    if cuda:
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() / MIB
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tokens = int(batch["input_ids"].numel())
    return {"before_mib": before, "peak_mib": peak, "loss": float(loss), "tokens_fed": tokens}


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", default=".cache/models/smollm2-135m", help="model directory")
    p.add_argument("--dataset", default="ARC_Challenge")
    p.add_argument("--data-dir", default=None, help="default: data/<dataset>")
    p.add_argument("--rows", type=int, default=256, help="the rows whose batches compete")
    p.add_argument("--bs", type=int, default=8)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--layout", help=argparse.SUPPRESS)  # the child's
    p.add_argument("--batch", help=argparse.SUPPRESS)  # the child's rows, as JSON
    harness.add_common_arguments(p, repeats=2)
    a = p.parse_args()
    if a.layout:
        print(json.dumps(child(a)))
        return

    from steering.data import tokenize_split
    from steering.loading.loader import load_tokenizer
    from steering.tasks import get_task
    from steering.training.sampling import TrainingOrder

    task = get_task(a.dataset)
    split = task.load(data_dir=a.data_dir or f"data/{task.name}")["train"]
    tokenizer = load_tokenizer(a.model)
    lengths = [len(x) for x in tokenize_split(task, split, tokenizer)["input_ids"]]
    n = min(a.rows, len(lengths))
    order = TrainingOrder(lengths[:n], a.seed, a.bs, grouped=False).indices()
    groups = [order[i : i + a.bs] for i in range(0, n, a.bs)]
    widest = max(groups, key=lambda g: len(g) * max(lengths[i] for i in g))
    args = [sys.executable, __file__, "--model", a.model, "--dataset", a.dataset]
    args += ["--device", a.device, "--batch", json.dumps(widest)]
    args += ["--data-dir", a.data_dir] if a.data_dir else []
    found: dict[str, list[dict]] = {"padded": [], "packed": []}
    for _ in range(a.repeats):
        for layout in found:
            done = subprocess.run([*args, "--layout", layout], capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"the {layout} step failed:\n{done.stderr[-3000:]}")
            found[layout].append(json.loads(done.stdout.strip().splitlines()[-1]))
    harness.cross_entropy_check(
        found["packed"][0]["loss"], found["padded"][0]["loss"], "packed vs padded"
    )
    rows_out = []
    for layout, runs in found.items():
        step = min(r["peak_mib"] - r["before_mib"] for r in runs)
        rows_out.append(
            {
                "layout": layout,
                "rows": len(widest),
                "real_tokens": sum(lengths[i] for i in widest),
                "tokens_fed": runs[0]["tokens_fed"],
                "step_peak_mib": round(step, 1),
                "held_before_mib": round(min(r["before_mib"] for r in runs), 1),
            }
        )
    rows_out.append(
        {
            "layout": "packed / padded",
            "step_peak_mib": round(rows_out[1]["step_peak_mib"] / rows_out[0]["step_peak_mib"], 3),
        }
    )
    harness.print_table(rows_out, list(rows_out[0]))
    harness.write_result(
        harness.result_path(a.out, "packed_memory", a.device, Path(a.model).name),
        "the peak memory of one steering training step (forward + backward) on the batch with "
        "the most padded tokens, padded to its longest row and packed, each in a fresh process",
        {k: v for k, v in vars(a).items() if k not in ("out", "layout", "batch")},
        rows_out,
        runs=found,
    )


if __name__ == "__main__":
    main()
