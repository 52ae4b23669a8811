"""Tiny offline stand-ins: random-weight models of every supported architecture and a
project-built BPE tokenizer, so code paths that normally load from the hub run without it.

Models are built from configs (no download) with a fixed seed; the tokenizer is a byte-level
BPE trained in well under a second on a fixed synthetic corpus, so it is identical on every
machine. Special tokens: ``<|pad|>`` = 0, ``<|bos|>`` = 1, ``<|eos|>`` = 2.
"""

from __future__ import annotations

import random

import torch
import transformers as hf

from steering.runtime import storage

PAD_ID, BOS_ID, EOS_ID = 0, 1, 2
SPECIAL_TOKENS = ["<|pad|>", "<|bos|>", "<|eos|>", "<|user|>", "<|assistant|>", "<|system|>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|eos|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def _sizes(vocab_size: int, hidden_size: int, num_layers: int) -> dict:
    return dict(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        pad_token_id=PAD_ID,
        bos_token_id=BOS_ID,
        eos_token_id=EOS_ID,
    )


def _gemma3_multimodal(s: dict) -> hf.PretrainedConfig:
    text = hf.Gemma3TextConfig(**s, head_dim=s["hidden_size"] // 4)
    vision = hf.SiglipVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=28,
        patch_size=14,
    )
    v = s["vocab_size"]
    return hf.Gemma3Config(
        text_config=text,
        vision_config=vision,
        mm_tokens_per_image=4,
        image_token_index=v - 1,
        boi_token_index=v - 3,
        eoi_token_index=v - 2,
    )


def _gpt2(s: dict) -> hf.PretrainedConfig:
    return hf.GPT2Config(
        vocab_size=s["vocab_size"],
        n_embd=s["hidden_size"],
        n_layer=s["num_hidden_layers"],
        n_head=4,
        n_positions=1024,
        bos_token_id=BOS_ID,
        eos_token_id=EOS_ID,
        pad_token_id=PAD_ID,
    )


def _opt(s: dict) -> hf.PretrainedConfig:
    return hf.OPTConfig(
        vocab_size=s["vocab_size"],
        hidden_size=s["hidden_size"],
        ffn_dim=2 * s["hidden_size"],
        num_hidden_layers=s["num_hidden_layers"],
        num_attention_heads=4,
        word_embed_proj_dim=s["hidden_size"],
        bos_token_id=BOS_ID,
        eos_token_id=EOS_ID,
        pad_token_id=PAD_ID,
    )


def _gpt_neox(s: dict) -> hf.PretrainedConfig:
    s = {k: v for k, v in s.items() if k != "num_key_value_heads"}
    return hf.GPTNeoXConfig(**s)


# model_type -> (config builder from the shared sizes, model class)
TINY_MODELS = {
    "llama": (lambda s: hf.LlamaConfig(**s), hf.LlamaForCausalLM),
    "mistral": (lambda s: hf.MistralConfig(**s), hf.MistralForCausalLM),
    "qwen2": (lambda s: hf.Qwen2Config(**s), hf.Qwen2ForCausalLM),
    "qwen3": (lambda s: hf.Qwen3Config(**s, head_dim=s["hidden_size"] // 4), hf.Qwen3ForCausalLM),
    "gemma": (lambda s: hf.GemmaConfig(**s, head_dim=s["hidden_size"] // 4), hf.GemmaForCausalLM),
    "gemma2": (
        lambda s: hf.Gemma2Config(**s, head_dim=s["hidden_size"] // 4),
        hf.Gemma2ForCausalLM,
    ),
    "gemma3_text": (
        lambda s: hf.Gemma3TextConfig(**s, head_dim=s["hidden_size"] // 4),
        hf.Gemma3ForCausalLM,
    ),
    "gemma3": (_gemma3_multimodal, hf.Gemma3ForConditionalGeneration),
    "phi3": (lambda s: hf.Phi3Config(**s), hf.Phi3ForCausalLM),
    "gpt2": (_gpt2, hf.GPT2LMHeadModel),
    "gpt_neox": (_gpt_neox, hf.GPTNeoXForCausalLM),
    "opt": (_opt, hf.OPTForCausalLM),
}


def tiny_model(
    model_type: str = "llama",
    vocab_size: int = 512,
    hidden_size: int = 64,
    num_layers: int = 2,
    seed: int = 0,
    tie_word_embeddings: bool | None = None,
    dtype: torch.dtype = torch.float32,
    initializer_range: float | None = None,
) -> hf.PreTrainedModel:
    """A random-weight model of ``model_type`` in eval mode, built from a config offline.

    ``initializer_range`` overrides the config's init std (0.02 by default, which leaves a tiny
    model's logits nearly uniform; larger values give it a usable dynamic range).
    """
    if model_type not in TINY_MODELS:
        raise ValueError(f"no tiny model for {model_type!r}; choose one of {sorted(TINY_MODELS)}")
    make_config, model_cls = TINY_MODELS[model_type]
    config = make_config(_sizes(vocab_size, hidden_size, num_layers))
    if tie_word_embeddings is not None:
        config.tie_word_embeddings = tie_word_embeddings
    if initializer_range is not None:
        for cfg in {id(config): config, id(text := config.get_text_config()): text}.values():
            cfg.initializer_range = initializer_range
    config._name_or_path = f"tiny-{model_type}"
    torch.manual_seed(seed)
    model = model_cls(config).to(dtype)
    return model.eval()


_WORDS = (
    "the a of to and in is was for on that with as by at from it an be this which or are "
    "answer question passage true false option sentence choose correct blank fill evaluate "
    "value following nested list expression return only final numeric result inside "
    "multiple choice math rationale reasoning because so therefore total each per more less "
    "than how many much what who when where why she he they we you cat dog apple book tree "
    "river city school friend money price hour day week year red blue green big small"
).split()
_PUNCT = list(".,:;?!()[]<>/-+*=%$#'\"\n") + ["...", "…", "####", "</answer>", "<answer>"]
# The protocol's fixed strings, frequent in the corpus so the tiny tokenizer encodes answers in
# few tokens (Winogrande allows only 5 new tokens for "Answer: Option1.").
_PHRASES = [
    "Answer: Option1.",
    "Answer: Option2.",
    "Answer: True.",
    "Answer: False.",
    "Option1:",
    "Option2:",
    "Passage:",
    "Question:",
    "Expression:",
    "<answer>",
    "</answer>",
    "[MIN",
    "[MAX",
    "[MED",
    "[SM",
    "( (",
    ") )",
    "Answer: (A)",
    "Answer: (B)",
    "Answer: (C)",
    "Answer: (D)",
    "Answer: A.",
    "Answer: B.",
    "Answer: C.",
    "Answer: D.",
    "Answer: E.",
    "\nAnswer:",
]


def _corpus(seed: int = 0, lines: int = 4000) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(lines):
        parts = []
        for _ in range(rng.randint(4, 16)):
            r = rng.random()
            if r < 0.7:
                w = rng.choice(_WORDS)
                parts.append(w.capitalize() if rng.random() < 0.1 else w)
            elif r < 0.85:
                parts.append(str(rng.randint(0, 999)))
            else:
                parts.append(rng.choice(_PUNCT))
        if rng.random() < 0.5:
            parts.insert(rng.randrange(len(parts) + 1), rng.choice(_PHRASES))
        out.append(" ".join(parts))
    return out


def build_tokenizer(vocab_size: int = 512) -> hf.PreTrainedTokenizerFast:
    """A deterministic byte-level BPE tokenizer with pad/bos/eos and a chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    fast = hf.PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<|pad|>",
        bos_token="<|bos|>",
        eos_token="<|eos|>",
        additional_special_tokens=SPECIAL_TOKENS[3:],
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def save_tiny_model(
    out_dir,
    model_type: str = "llama",
    hidden_size: int = 64,
    num_layers: int = 4,
    vocab_size: int = 512,
    init_std: float = 0.3,
    seed: int = 0,
):
    """Save a tiny model and the project tokenizer as a normal HF model directory."""
    from pathlib import Path

    if hidden_size % 4 or hidden_size < 8 or num_layers < 1:
        raise ValueError("--hidden-size must be a multiple of 4 (>= 8) and --layers >= 1")
    out = Path(out_dir)
    storage.probe(out, what="--out")
    tokenizer = build_tokenizer(vocab_size)
    model = tiny_model(
        model_type,
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_layers=num_layers,
        seed=seed,
        initializer_range=init_std,
    )
    model.config._name_or_path = str(out)
    with storage.staged_dir(out, last=("config.json",)) as stage:  # whole or not at all
        model.save_pretrained(stage)
        tokenizer.save_pretrained(stage)
    return out
