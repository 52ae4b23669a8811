"""The paper's reference accuracies (PROTOCOL.md section 7, from the official blog post).

REFERENCE[(model, method)] = {"params": trainable share as printed, dataset: accuracy in %}.
Config entries map a model / variant to these names with ``paper: ...``.
"""

from __future__ import annotations

DATASETS = ("BoolQ", "Winogrande", "GSM8K", "ListOps")

_T1 = """
Llama-3.2-1B | full fine-tuning | 100 % | 88.2 | 58.2 | 32.2 | 66.2
Llama-3.2-1B | LoRA r=8 | 0.45 % | 87.8 | 55.7 | 32.0 | 65.3
Llama-3.2-1B | ReFT | 0.04 % | 85.8 | 49.2 | 30.7 | 64.1
Llama-3.2-1B | post-block r=8 SiLU | 0.04 % | 87.5 | 57.9 | 31.0 | 65.3
Llama-3.2-1B | post-block r=8 linear | 0.04 % | 85.6 | 59.1 | 31.6 | 65.5
Llama-3.2-1B | post-block vector | 0.003 % | 86.7 | 57.7 | 29.3 | 64.9
Llama-3.2-1B | post-block r=1 | 0.005 % | 85.5 | 53.6 | 31.4 | 64.6
gemma-3-1b | full fine-tuning | 100 % | 83.3 | 51.4 | 23.4 | 65.8
gemma-3-1b | LoRA r=8 | 0.45 % | 85.0 | 51.4 | 21.7 | 65.0
gemma-3-1b | ReFT | 0.04 % | 76.6 | 49.2 | 13.5 | 55.7
gemma-3-1b | post-block r=8 SiLU | 0.04 % | 82.1 | 52.2 | 20.0 | 63.3
gemma-3-1b | post-block r=8 linear | 0.04 % | 82.1 | 53.6 | 21.0 | 65.3
gemma-3-1b | post-block vector | 0.003 % | 70.6 | 49.4 | 18.4 | 54.6
gemma-3-1b | post-block r=1 | 0.005 % | 81.8 | 52.1 | 18.1 | 65.4
Qwen3-4B | LoRA r=8 | 0.41 % | 91.1 | 84.5 | 37.3 | 78.1
Qwen3-4B | ReFT | 0.036 % | 89.6 | 64.7 | 39.1 | 69.1
Qwen3-4B | post-block r=8 SiLU | 0.036 % | 91.3 | 81.2 | 39.8 | 73.9
Qwen3-4B | post-block r=8 linear | 0.036 % | 90.2 | 83.1 | 36.8 | 74.4
"""


def _parse(text: str) -> dict[tuple[str, str], dict]:
    table = {}
    for line in text.strip().splitlines():
        model, method, params, *scores = (c.strip() for c in line.split("|"))
        table[model, method] = {
            "params": params,
            **dict(zip(DATASETS, map(float, scores), strict=True)),
        }
    return table


REFERENCE: dict[tuple[str, str], dict] = _parse(_T1)
MODELS = tuple(dict.fromkeys(m for m, _ in REFERENCE))
METHODS = tuple(dict.fromkeys(m for _, m in REFERENCE))


def reference(model: str | None, method: str | None, dataset: str) -> float | None:
    """The paper's accuracy (%) for this model, method and dataset, or None."""
    return REFERENCE.get((model, method), {}).get(dataset)
