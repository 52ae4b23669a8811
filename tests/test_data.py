"""Training examples (prompt masking, truncation, the chat path), prompts and the collator."""

import pytest
import torch

from steering.data import (
    IGNORE_INDEX,
    SYSTEM_PROMPT,
    Collator,
    chat_text,
    encode_example,
    encode_prompt,
    ensure_pad_token,
    tokenize_split,
    uses_chat_template,
)
from steering.tasks import get_task

PROMPT, COMPLETION = "Is the sky blue?\n", "Answer: True."


def test_plain_masking_is_exactly_the_prompt(tokenizer):
    ex = encode_example(tokenizer, PROMPT, COMPLETION, max_length=256)
    full = tokenizer(PROMPT + COMPLETION).input_ids
    n_prompt = len(tokenizer(PROMPT).input_ids)
    assert ex["input_ids"] == full and ex["attention_mask"] == [1] * len(full)
    assert ex["labels"] == [IGNORE_INDEX] * n_prompt + full[n_prompt:]
    assert tokenizer.decode(full[n_prompt:]) == COMPLETION  # no EOS appended
    assert tokenizer.eos_token_id not in ex["input_ids"]


def test_chat_masking_is_exactly_the_generation_prompt(tokenizer):
    ex = encode_example(tokenizer, PROMPT, COMPLETION, max_length=256, chat=True)
    prefix_text = chat_text(tokenizer, PROMPT)
    assert prefix_text == f"<|system|>{SYSTEM_PROMPT}<|eos|><|user|>{PROMPT}<|eos|><|assistant|>"
    full_text = chat_text(tokenizer, PROMPT, COMPLETION)
    assert full_text == f"{prefix_text}{COMPLETION}<|eos|>"
    prefix = tokenizer(prefix_text, add_special_tokens=False).input_ids
    assert ex["input_ids"] == tokenizer(full_text, add_special_tokens=False).input_ids
    assert ex["labels"][: len(prefix)] == [IGNORE_INDEX] * len(prefix)
    assert ex["labels"][len(prefix) :] == ex["input_ids"][len(prefix) :]
    assert encode_prompt(tokenizer, PROMPT, chat=True) == prefix


def test_right_truncation_keeps_the_mask(tokenizer):
    long_prompt = "word " * 100 + "\n"
    ex = encode_example(tokenizer, long_prompt, COMPLETION, max_length=20)
    assert (
        len(ex["input_ids"]) == 20
        and ex["input_ids"] == tokenizer(long_prompt + COMPLETION).input_ids[:20]
    )
    assert ex["labels"] == [IGNORE_INDEX] * 20  # only prompt survived: nothing to learn


def test_eval_prompts_are_not_truncated(tokenizer):
    long_prompt = "word " * 1000
    assert encode_prompt(tokenizer, long_prompt) == tokenizer(long_prompt).input_ids
    assert len(encode_prompt(tokenizer, long_prompt)) > 1000


def test_collator_pads_to_the_batch_longest(tokenizer):
    rows = [
        encode_example(tokenizer, PROMPT, COMPLETION, 256),
        encode_example(tokenizer, "Q?\n", "A", 256),
    ]
    batch = Collator(tokenizer.pad_token_id)(rows)
    width = max(len(r["input_ids"]) for r in rows)
    assert batch["input_ids"].shape == (2, width)
    short = len(rows[1]["input_ids"])
    assert batch["input_ids"][1, short:].eq(tokenizer.pad_token_id).all()
    assert batch["attention_mask"][1].tolist() == [1] * short + [0] * (width - short)
    assert batch["labels"][1, short:].eq(IGNORE_INDEX).all()
    assert batch["labels"][0].tolist() == rows[0]["labels"]
    padded = Collator(tokenizer.pad_token_id, pad_to_multiple_of=8)(rows)
    assert padded["input_ids"].shape[1] % 8 == 0 and padded["input_ids"].dtype == torch.long


def test_collator_needs_a_pad_token():
    with pytest.raises(ValueError, match="no pad token"):
        Collator(None)


def test_ensure_pad_token_uses_eos(tokenizer):
    from copy import deepcopy

    tok = deepcopy(tokenizer)
    tok.pad_token = None
    assert ensure_pad_token(tok).pad_token == tok.eos_token


def test_tokenize_split_uses_the_task_protocol(tokenizer):
    task = get_task("Winogrande")
    ds = task.make_splits(task.synthetic(seed=0, scale=0.01))["train"]
    plain = tokenize_split(task, ds, tokenizer)
    chat = tokenize_split(task, ds, tokenizer, chat=True)
    assert plain.column_names == ["input_ids", "attention_mask", "labels"]
    row = ds[0]
    assert plain[0] == encode_example(tokenizer, task.prompt(row), task.completion(row), 256)
    assert chat[0] == encode_example(
        tokenizer, task.prompt(row), task.completion(row), 100, chat=True
    )


@pytest.mark.parametrize(
    "model_type, expected",
    [
        ("gemma", True),
        ("gemma2", True),
        ("gemma3_text", True),
        ("gemma3", True),
        ("llama", False),
        ("qwen3", False),
        ("unknown", False),
    ],
)
def test_chat_template_is_for_gemma_only(model_type, expected):
    assert uses_chat_template(model_type) is expected
