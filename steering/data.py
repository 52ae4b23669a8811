"""Turning task rows into model inputs: training examples with prompt masking, evaluation
prompts, the Gemma chat-template path, and a dynamic-padding collator (PROTOCOL.md section 2).

Training text = prompt + completion; labels = input ids with -100 on the first
len(tokenize(prompt)) positions and on padding; right truncation to the task's max length;
no EOS appended. Gemma models: messages [system "You are a helpful assistant.", user prompt,
assistant completion], the masked prefix being the template rendered with
``add_generation_prompt=True``. Evaluation prompts are never truncated.
"""

from __future__ import annotations

from typing import Any

import torch

from steering.architectures import ARCHITECTURES

IGNORE_INDEX = -100
SYSTEM_PROMPT = "You are a helpful assistant."


def uses_chat_template(model_type: str) -> bool:
    """Whether the protocol sends prompts through the chat template (Gemma models)."""
    arch = ARCHITECTURES.get(model_type)
    return bool(arch and arch.gemma)


def chat_text(tokenizer, prompt: str, completion: str | None = None) -> str:
    """The chat template rendered as text; with no completion, ready for the assistant turn."""
    messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": prompt}]
    if completion is not None:
        messages.append({"role": "assistant", "content": completion})
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=completion is None
    )


def encode_prompt(tokenizer, prompt: str, chat: bool = False) -> list[int]:
    """Token ids of an evaluation prompt: special tokens as the tokenizer adds them (the
    chat template carries its own), never truncated."""
    if chat:
        return tokenizer(chat_text(tokenizer, prompt), add_special_tokens=False).input_ids
    return tokenizer(prompt).input_ids


def encode_example(
    tokenizer, prompt: str, completion: str, max_length: int, chat: bool = False
) -> dict[str, list[int]]:
    """``input_ids``, ``attention_mask`` and ``labels`` (prompt positions -100), right-truncated."""
    if chat:
        prefix = encode_prompt(tokenizer, prompt, chat=True)
        ids = tokenizer(
            chat_text(tokenizer, prompt, completion), add_special_tokens=False
        ).input_ids
    else:
        prefix = tokenizer(prompt).input_ids
        ids = tokenizer(prompt + completion).input_ids
    n_masked = min(len(prefix), len(ids))
    labels = [IGNORE_INDEX] * n_masked + ids[n_masked:]
    ids, labels = ids[:max_length], labels[:max_length]
    return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels}


def tokenize_split(task, dataset, tokenizer, chat: bool = False, max_length: int | None = None):
    """Map a split of ``task`` rows to training examples (a ``datasets.Dataset``)."""
    max_length = max_length or task.max_length_for(chat)

    def encode(ex: dict[str, Any]) -> dict[str, list[int]]:
        return encode_example(tokenizer, task.prompt(ex), task.completion(ex), max_length, chat)

    return dataset.map(encode, remove_columns=dataset.column_names, desc=f"tokenize {task.name}")


class Collator:
    """Pads a batch to its longest row (right padding): pad id, attention 0, label -100."""

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int | None = None) -> None:
        if pad_token_id is None:
            raise ValueError("the tokenizer has no pad token; set tokenizer.pad_token = eos_token")
        self.pad_token_id = pad_token_id
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, rows: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        width = max(len(r["input_ids"]) for r in rows)
        if self.pad_to_multiple_of:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        fill = {"input_ids": self.pad_token_id, "attention_mask": 0, "labels": IGNORE_INDEX}
        return {
            key: torch.tensor([list(r[key]) + [pad] * (width - len(r[key])) for r in rows])
            for key, pad in fill.items()
        }


def ensure_pad_token(tokenizer):
    """The protocol's rule: a tokenizer without a pad token pads with EOS."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
