"""Benchmark: what the training batch order costs on real rows, in tokens and seconds.

    python benchmarks/batch_order.py [--model .cache/models/smollm2-135m --dataset ARC_Challenge
        --data-dir data/ARC_Challenge --rows 128 --bs 8]

Five ways to feed the same training rows (the task's prompts, masking and truncation) to
post-block steering on one model, forward + backward of the LM loss per batch:
- official_fixed: the official code's layout, every row padded to the task's max length, in
  the official order (``steering/training/sampling.py``: HF's sampler on rows of one length);
- official: the same batches, each padded only to its longest row (our default);
- grouped: length-grouped batches (``--length-grouping``), padded to their longest row;
- packed: the official batches, each packed into one sequence without padding
  (``steering/training/packing.py``, the default since issue 39);
- grouped_packed: the length-grouped batches packed (``--length-grouping`` with packing,
  what ``make run`` would train with unless its config sets ``packing: false``).
``--layouts`` times a subset (default: all five).
Token counts (tokens fed / real tokens) cover the whole training split; the epoch times cover
the first ``--rows`` rows (one epoch of them, the sides interleaved). The official layouts
and the packed one see the same rows in the same batches, so their summed losses must agree
(checked), as must the two grouped ones: padding costs time, not a different result.
Writes benchmarks/results/batch_order_<cpu|gpu>_<model>.json.
"""

import argparse
import time
from pathlib import Path

import harness

from steering import SteeredModel, SteeringConfig
from steering.data import Collator, tokenize_split
from steering.loading.loader import load_base_model, load_tokenizer
from steering.tasks import get_task
from steering.training.packing import PackedCollator
from steering.training.sampling import TrainingOrder

# layout -> (grouped order?, batch width: the max length, or None = the longest row, or 0 =
# packed: each row its own length, nothing padded); the max length filled in per task
LAYOUTS = {
    "official_fixed": (False, "max"),
    "official": (False, None),
    "grouped": (True, None),
    "packed": (False, 0),
    "grouped_packed": (True, 0),
}
SAME_BATCHES = [
    ("official_fixed", "official"),
    ("packed", "official"),
    ("grouped_packed", "grouped"),
]


def batches(order: list[int], bs: int) -> list[list[int]]:
    return [order[i : i + bs] for i in range(0, len(order), bs)]


def fed_tokens(lengths: list[int], groups: list[list[int]], width: int | None) -> int:
    """Tokens the model processes: each batch padded to ``width``, or to its longest row
    (None), or packed (0: the real tokens)."""
    if width == 0:
        return sum(lengths[i] for g in groups for i in g)
    return sum(len(g) * (width or max(lengths[i] for i in g)) for g in groups)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", default=".cache/models/smollm2-135m", help="model directory")
    p.add_argument("--dataset", default="ARC_Challenge")
    p.add_argument("--data-dir", default=None, help="default: data/<dataset>")
    p.add_argument("--rows", type=int, default=128, help="rows of the timed epoch")
    p.add_argument("--bs", type=int, default=8)
    p.add_argument("--grad-accum", type=int, default=2, help="the grouping window's factor")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument(
        "--layouts", nargs="+", choices=list(LAYOUTS), default=list(LAYOUTS), help="to time"
    )
    harness.add_common_arguments(p, repeats=1)
    a = p.parse_args()

    task = get_task(a.dataset)
    split = task.load(data_dir=a.data_dir or f"data/{task.name}")["train"]
    tokenizer = load_tokenizer(a.model)
    features = tokenize_split(task, split, tokenizer)
    lengths = [len(x) for x in features["input_ids"]]
    max_length = task.max_length_for(False)
    window = a.bs * a.grad_accum
    layouts = {
        name: (grouped, max_length if width == "max" else width)
        for name, (grouped, width) in LAYOUTS.items()
        if name in a.layouts
    }

    def order(n: int, grouped: bool) -> list[int]:
        return TrainingOrder(lengths[:n], a.seed, window, grouped=grouped).indices()

    real = sum(lengths)
    rows = min(a.rows, len(lengths))
    split_tokens, epoch_tokens, inputs = {}, {}, {}
    for name, (grouped, width) in layouts.items():
        split_tokens[name] = fed_tokens(lengths, batches(order(len(lengths), grouped), a.bs), width)
        groups = batches(order(rows, grouped), a.bs)  # the timed epoch: the first --rows rows
        epoch_tokens[name] = fed_tokens(lengths, groups, width)
        collate = PackedCollator() if width == 0 else Collator(tokenizer.pad_token_id, width)
        inputs[name] = [
            {
                k: v.to(a.device) if hasattr(v, "to") else v
                for k, v in collate([features[i] for i in g]).items()
            }
            for g in groups
        ]
    base = load_base_model(a.model, "float32", a.device).train()
    model = SteeredModel(base, SteeringConfig())

    def side(name):
        def run() -> float:
            total = 0.0
            for batch in inputs[name]:
                harness.zero_grads(model)
                loss = model(**batch).loss
                loss.backward()
                total += float(loss.detach())
            return total

        return run

    start = time.perf_counter()
    side(next(iter(inputs)))()  # warm-up: one untimed pass
    warmup_s = time.perf_counter() - start
    timing = harness.interleaved(
        {name: side(name) for name in inputs}, a.repeats, a.device, warmup=0
    )
    for one, other in SAME_BATCHES:
        if one in inputs and other in inputs:
            harness.cross_entropy_check(
                timing.values[one], timing.values[other], f"{one} vs {other}"
            )
    best = timing.bests()
    first = "official_fixed" if "official_fixed" in inputs else next(iter(inputs))
    rows_out = []
    for name in inputs:
        rows_out.append(
            {
                "layout": name,
                "split_tokens_fed": split_tokens[name],
                "split_padding_ratio": round(split_tokens[name] / real, 3),
                "epoch_rows": rows,
                "epoch_tokens_fed": epoch_tokens[name],
                "epoch_s": round(best[name], 3),
                "tokens_per_s": round(epoch_tokens[name] / best[name], 1),
                f"vs_{first}": round(timing.ratio(name, first), 3),
            }
        )
    harness.print_table(rows_out, list(rows_out[0]))
    name = Path(a.model).name
    harness.write_result(
        harness.result_path(a.out, "batch_order", a.device, name),
        "one training epoch of steering on real rows: the official layout (fixed padding), the "
        "official order padded per batch (--no-packing), length-grouped batches "
        "(--length-grouping), the official batches packed (default), the grouped batches packed",
        {k: v for k, v in vars(a).items() if k != "out"},
        rows_out,
        split_rows=len(lengths),
        split_real_tokens=real,
        max_length=max_length,
        warmup_s=round(warmup_s, 3),
        times_s=timing.times,
    )


if __name__ == "__main__":
    main()
