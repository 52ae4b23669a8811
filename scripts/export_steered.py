"""Export a steering-vector checkpoint (--no-adapter, all positions) to lm-eval's `steered`
model format, so its users get the numbers SteeringLM gets.

    python scripts/export_steered.py --checkpoint DIR --out vectors.pt
    lm_eval --model steered --model_args pretrained=BASE,steer_path=vectors.pt --tasks ...

The .pt file maps each steered module's name under the model's base_model (layers.3) to its
vector, coefficient alpha and action "add" (steering/lm_eval/steered.py). Low-rank adapters
and last-token steering have no such format: evaluate them with --model steering.
"""

import argparse
import sys

from steering.runtime.cli import run


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--checkpoint", required=True, help="a steering-vector checkpoint directory")
    p.add_argument("--out", required=True, help="the .pt file to write")
    p.add_argument("--pretrained", help="its base model (default: the one it records)")
    p.add_argument("--debug", action="store_true")
    a = p.parse_args()
    from steering.lm_eval import steered

    print(f"wrote {steered.export(a.checkpoint, a.out, a.pretrained)}")


if __name__ == "__main__":
    sys.exit(run(main, output_flag="--out"))
