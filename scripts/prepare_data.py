"""Write a task's train / validation / test splits as Parquet plus a manifest.

    python scripts/prepare_data.py --dataset-name GSM8K --out results/data/GSM8K
    python scripts/prepare_data.py --dataset-name GSM8K --data-dir my/gsm8k --out ...
    python scripts/prepare_data.py --dataset-name ListOps --synthetic --seed 0 --out ...

The source is the hub (default), a directory of source-split files in the hub schema
(--data-dir), or the task's generator (--synthetic). The splits are carved as the protocol
says; the manifest records row counts, content hashes, the source and the protocol version.
"""

import argparse
import sys

from steering.cli import run
from steering.tasks import TASKS, get_task
from steering.tasks.files import read_source, write_prepared


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset-name", required=True, help=f"one of {list(TASKS)} (or ARC)")
    parser.add_argument("--out", required=True, help="output directory")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--data-dir", help="local source-split files (jsonl/json/parquet)")
    source.add_argument("--synthetic", action="store_true", help="generate stand-in data")
    parser.add_argument("--seed", type=int, default=0, help="generator seed (--synthetic)")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="generated rows x this (--synthetic)"
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    args = parser.parse_args()
    if args.scale <= 0:
        parser.error("--scale must be > 0")
    task = get_task(args.dataset_name)
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
    manifest = write_prepared(task, task.make_splits(raw), args.out, origin)
    counts = ", ".join(f"{s} {v['rows']}" for s, v in manifest["splits"].items())
    print(
        f"{task.name} (protocol v{task.protocol_version}, {origin['kind']}): {counts} -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
