"""The paper's oracle-shift analysis: how close shifts after every block of a base model get
to its full fine-tune (steering/analysis/run.py, docs/analysis.md).

    python scripts/analyze.py --base results/models/tiny --finetuned RUN/full/seed0/checkpoint \\
        --adapter silu RUN/silu/seed0/checkpoint --adapter lora RUN/lora/seed0/checkpoint \\
        --dataset ARC_Challenge --data-dir results/data/ARC_Challenge --rows 64 --ranks 1 8 64 \\
        --out results/analysis/tiny/ARC_Challenge

Writes <out>/layers.csv, approximations.csv, summary.json, effective_rank.png, mlp_share.png
and kl.png.
"""

import argparse
import sys

from steering.runtime.cli import run


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--base", required=True, help="the base model (hub id or directory)")
    p.add_argument(
        "--finetuned", required=True, help="its full fine-tune: a full run's checkpoint or model"
    )
    p.add_argument(
        "--adapter",
        nargs=2,
        action="append",
        metavar=("NAME", "PATH"),
        help="a trained steering or LoRA checkpoint on the base model (repeatable)",
    )
    p.add_argument("--dataset", required=True, help="the task whose rows are analysed")
    p.add_argument("--data-dir", help="prepared splits or source-split files (default: the hub)")
    p.add_argument("--split", default="validation", choices=["validation", "test", "train"])
    p.add_argument("--rows", type=int, default=64, help="the split's first rows")
    p.add_argument("--ranks", type=int, nargs="+", default=[1, 8, 64])
    p.add_argument("--batch-rows", type=int, default=8, help="rows per forward pass")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--device", help="default: CUDA if present, else CPU")
    p.add_argument("--single-bos", action="store_true")
    p.add_argument("--out", required=True, help="the output directory")
    p.add_argument("--debug", action="store_true")
    return p.parse_args()


def main() -> None:
    a = parse_args()
    from steering.analysis import run as analysis
    from steering.runtime.storage import probe

    for flag in ("rows", "batch_rows"):
        if getattr(a, flag) < 1:
            raise ValueError(f"--{flag.replace('_', '-')} must be at least 1")
    probe(a.out, what="--out")
    s = analysis.AnalysisSettings(
        base=a.base,
        finetuned=a.finetuned,
        dataset=a.dataset,
        out=a.out,
        adapters=analysis.read_adapters(a.adapter),
        data_dir=a.data_dir,
        rows=a.rows,
        ranks=a.ranks,
        batch_rows=a.batch_rows,
        split=a.split,
        dtype=a.dtype,
        device=a.device,
        single_bos=a.single_bos,
    )
    summary = analysis.run(s)
    print(analysis.dumps(summary))
    print(f"-> {a.out}/layers.csv, approximations.csv, summary.json and three plots")


if __name__ == "__main__":
    sys.exit(run(main, output_flag="--out"))
