"""Small GGUF files for tests, written with the `gguf` package's GGUFWriter.

``write_tiny_gguf`` stores a tiny random llama (``steering.loading.tiny``) and the project tokenizer
the way llama.cpp's converter lays a llama out: tensor names ``blk.<i>.attn_q.weight`` ..., the
query and key rows permuted for its rotary layout (transformers undoes this when it reads the
file), the byte-level BPE vocabulary as ``tokenizer.ggml.*`` with its merges, the chat template.
Tensors are float32, so reading the file back gives the model's weights exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from steering.loading.tiny import build_tokenizer, tiny_model

# HF llama parameter (inside model.layers.<i>.) -> the GGUF tensor name (inside blk.<i>.)
LAYER_TENSORS = {
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
}


def rotary_permute(w: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's row order for a q/k projection (out, in): within each head, the two rotary
    halves interleaved; transformers' GGUF reader applies the inverse."""
    out = w.shape[0]
    return w.reshape(heads, 2, out // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def tiny_gguf_model(seed: int = 0, hidden_size: int = 64, num_layers: int = 2):
    """The tiny llama and tokenizer that ``write_tiny_gguf`` stores."""
    tok = build_tokenizer()
    model = tiny_model(
        "llama",
        vocab_size=len(tok),
        hidden_size=hidden_size,
        num_layers=num_layers,
        seed=seed,
        initializer_range=0.3,
    )
    return model, tok


def write_tiny_gguf(
    path: str | Path,
    seed: int = 0,
    arch: str = "llama",
    hidden_size: int = 64,
    num_layers: int = 2,
) -> Path:
    """Write the tiny llama of ``tiny_gguf_model(seed)`` as a GGUF file at ``path``.

    ``arch`` is the ``general.architecture`` the file states (another than llama makes a file
    of an architecture transformers may not read; the tensors stay a llama's)."""
    from gguf import GGUFWriter, TokenType

    model, tok = tiny_gguf_model(seed, hidden_size, num_layers)
    c = model.config
    path = Path(path)
    w = GGUFWriter(str(path), arch)
    w.add_name("tiny-llama")
    w.add_context_length(2048)
    w.add_embedding_length(c.hidden_size)
    w.add_block_count(c.num_hidden_layers)
    w.add_feed_forward_length(c.intermediate_size)
    w.add_head_count(c.num_attention_heads)
    w.add_head_count_kv(c.num_key_value_heads)
    w.add_layer_norm_rms_eps(c.rms_norm_eps)
    w.add_rope_freq_base(c.rope_parameters["rope_theta"])
    w.add_rope_dimension_count(c.hidden_size // c.num_attention_heads)
    w.add_vocab_size(c.vocab_size)
    w.add_file_type(0)  # all float32

    vocab = sorted(tok.get_vocab().items(), key=lambda kv: kv[1])
    special = set(tok.all_special_ids)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list([t for t, _ in vocab])
    w.add_token_types([TokenType.CONTROL if i in special else TokenType.NORMAL for _, i in vocab])
    import json

    merges = json.loads(tok.backend_tokenizer.to_str())["model"]["merges"]
    w.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in merges])
    w.add_bos_token_id(tok.bos_token_id)
    w.add_eos_token_id(tok.eos_token_id)
    w.add_pad_token_id(tok.pad_token_id)
    w.add_add_bos_token(False)
    w.add_chat_template(tok.chat_template)

    state = {k: v.detach().to(torch.float32).numpy() for k, v in model.state_dict().items()}
    w.add_tensor("token_embd.weight", state["model.embed_tokens.weight"])
    for i in range(c.num_hidden_layers):
        for hf_name, gguf_name in LAYER_TENSORS.items():
            t = state[f"model.layers.{i}.{hf_name}"]
            if gguf_name == "attn_q.weight":
                t = rotary_permute(t, c.num_attention_heads)
            elif gguf_name == "attn_k.weight":
                t = rotary_permute(t, c.num_key_value_heads)
            w.add_tensor(f"blk.{i}.{gguf_name}", np.ascontiguousarray(t))
    w.add_tensor("output_norm.weight", state["model.norm.weight"])
    if not c.tie_word_embeddings:
        w.add_tensor("output.weight", state["lm_head.weight"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
