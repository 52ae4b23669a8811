"""Write a task's train / validation / test splits as Parquet plus a manifest.

    python scripts/prepare_data.py --dataset-name GSM8K --out results/data/GSM8K
    python scripts/prepare_data.py --dataset-name GSM8K --data-dir my/gsm8k --out ...
    python scripts/prepare_data.py --dataset-name ListOps --synthetic --seed 0 --out ...

The source is the hub (default), a directory of source-split files in the hub schema
(--data-dir), or the task's generator (--synthetic). The splits are carved as the protocol
says; the manifest records row counts, content hashes, the source and the protocol version.

With --tokenizer MODEL (a hub id or model directory), it also prints, for every split, what
training on it with that model's tokenizer would see: rows, tokens per row (mean, p50, p95,
max) before truncation, rows the task's max length truncates, and rows left with no
supervised token (the prompt fills the max length), with a warning above 1 %; and the
train split's length profile, the quantiles a task records for the plan's padding estimate.
"""

import argparse
import sys

from steering.runtime.cli import run
from steering.runtime.storage import probe
from steering.tasks import EXTRA_TASKS, TASKS, get_task
from steering.tasks.files import read_source, write_prepared
from steering.training.flags import SINGLE_BOS_HELP


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--dataset-name", required=True, help=f"one of {[*TASKS, *EXTRA_TASKS]} (or ARC)"
    )
    parser.add_argument("--out", required=True, help="output directory")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--data-dir", help="local source-split files (jsonl/json/parquet)")
    source.add_argument("--synthetic", action="store_true", help="generate stand-in data")
    parser.add_argument("--seed", type=int, default=0, help="generator seed (--synthetic)")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="generated rows x this (--synthetic)"
    )
    parser.add_argument(
        "--tokenizer", help="also print token statistics for this model's tokenizer (hub id or dir)"
    )
    parser.add_argument("--single-bos", action="store_true", help=SINGLE_BOS_HELP)
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    args = parser.parse_args()
    if args.scale <= 0:
        parser.error("--scale must be > 0")
    task = get_task(args.dataset_name)
    probe(args.out, what="--out")  # read-only or full: stop before reading anything
    if args.synthetic:
        raw = task.synthetic(seed=args.seed, scale=args.scale)
        origin = {"kind": "synthetic", "seed": args.seed, "scale": args.scale}
    elif args.data_dir:
        raw = read_source(task, args.data_dir)
        origin = {"kind": "local", "path": args.data_dir}
    else:
        raw = task.load_hub()
        origin = {"kind": "hub", "id": task.hub_id, "config": task.hub_config}
    task.validate(raw)
    splits = task.make_splits(raw)
    manifest = write_prepared(task, splits, args.out, origin)
    counts = ", ".join(f"{s} {v['rows']}" for s, v in manifest["splits"].items())
    print(
        f"{task.name} (protocol v{task.protocol_version}, {origin['kind']}): {counts} -> {args.out}"
    )
    if args.tokenizer:
        print_token_stats(task, splits, args.tokenizer, args.single_bos)
    return 0


def print_token_stats(task, splits, model_name: str, single_bos: bool) -> None:
    from steering.architectures import uses_chat_template
    from steering.data import describe_stats, tokenize_split, truncation_stats
    from steering.loading.loader import load_model_type, load_tokenizer
    from steering.tasks.base import length_profile

    tokenizer = load_tokenizer(model_name)
    chat = uses_chat_template(load_model_type(model_name) or "")
    max_length = task.max_length_for(chat)
    header = ["split", "rows", "mean", "p50", "p95", "max", "truncated", "unsupervised"]
    table, warnings, profile = [], [], None
    for split, data in splits.items():
        features = tokenize_split(task, data, tokenizer, chat=chat, single_bos=single_bos)
        st = truncation_stats(features, max_length)
        table.append(
            [split, st["rows"], st["mean_tokens"], st["p50_tokens"], st["p95_tokens"]]
            + [st["max_tokens"], st["truncated"], st["unsupervised"]]
        )
        warnings += describe_stats(task.name, split, st)[1:]
        if split == "train":
            profile = length_profile(features["untruncated_length"])
    path = "chat template" + (", single BOS" if single_bos else "") if chat else "plain prompts"
    print(f"tokens with {model_name} ({path}; max length {max_length}; before truncation):")
    widths = [max(len(str(r[i])) for r in [header, *table]) for i in range(len(header))]
    for row in [header, *table]:
        print("  " + "  ".join(str(v).rjust(w) for v, w in zip(row, widths, strict=True)))
    if profile:
        print(f"length profile of train (Task.length_quantiles): {profile}")
    for line in warnings:
        print(line, file=sys.stderr)


if __name__ == "__main__":
    sys.exit(run(main, output_flag="--out"))
