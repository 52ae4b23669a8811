"""The shapes of the paper's four models, shipped so that a plan (``scripts/plan.py``, the
memory plan, the rules' host memory) works before any download.

Each entry holds the fields of the model's published ``config.json`` that
``steering.training.memory.shape_of`` reads (layers, hidden size, MLP size, attention heads,
key/value heads, head size, vocabulary, tied embeddings), copied from the file named in ``source``
(the model's Hugging Face repository, branch main). A ``config.json`` in the model's own
directory or in the local hub cache wins over these (``steering.training.memory.read_config``).
"""

from __future__ import annotations

from typing import Any

HUB = "https://huggingface.co/{}/blob/main/config.json"

PUBLIC_CONFIGS: dict[str, dict[str, Any]] = {
    "meta-llama/Llama-3.2-1B": {
        "model_type": "llama",
        "num_hidden_layers": 16,
        "hidden_size": 2048,
        "intermediate_size": 8192,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "head_dim": 64,
        "vocab_size": 128256,
        "tie_word_embeddings": True,
    },
    "google/gemma-3-1b-it": {
        "model_type": "gemma3_text",
        "num_hidden_layers": 26,
        "hidden_size": 1152,
        "intermediate_size": 6912,
        "num_attention_heads": 4,
        "num_key_value_heads": 1,
        "head_dim": 256,
        "vocab_size": 262144,
        "tie_word_embeddings": True,
    },
    "Qwen/Qwen3-4B": {
        "model_type": "qwen3",
        "num_hidden_layers": 36,
        "hidden_size": 2560,
        "intermediate_size": 9728,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "vocab_size": 151936,
        "tie_word_embeddings": True,
    },
    "meta-llama/Llama-3.1-8B": {
        "model_type": "llama",
        "num_hidden_layers": 32,
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "vocab_size": 128256,
        "tie_word_embeddings": False,
    },
}


def public_config(name: str) -> dict[str, Any] | None:
    """The shipped config fields of hub model ``name`` (with ``source``), or None."""
    found = PUBLIC_CONFIGS.get(name)
    return None if found is None else {**found, "source": HUB.format(name)}
