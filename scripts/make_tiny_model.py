"""Write a tiny random-weight model and the project's own tokenizer as an HF model directory.

    python scripts/make_tiny_model.py --arch llama --out results/models/tiny-llama

The directory loads with ``--model-name results/models/tiny-llama``; nothing is downloaded.
"""

import argparse
import sys

from steering.architectures import ARCHITECTURES
from steering.runtime.cli import run


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--arch", default="llama", choices=sorted(ARCHITECTURES))  # a tiny model of each
    p.add_argument("--out", required=True, help="output model directory")
    p.add_argument("--hidden-size", type=int, default=64)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--vocab-size", type=int, default=512, help="tokenizer and embedding size")
    p.add_argument(
        "--init-std", type=float, default=0.3, help="weight init std (0.02 leaves logits flat)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--debug", action="store_true")
    a = p.parse_args()
    from steering.loading.tiny import save_tiny_model

    path = save_tiny_model(a.out, a.arch, a.hidden_size, a.layers, a.vocab_size, a.init_std, a.seed)
    print(f"wrote a tiny {a.arch} model ({a.layers} layers, hidden {a.hidden_size}) to {path}")


if __name__ == "__main__":
    sys.exit(run(main, output_flag="--out"))
