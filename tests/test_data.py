"""Training examples (prompt masking, truncation, the chat path), prompts and the collator."""

import pytest
import torch

from steering.architectures import uses_chat_template
from steering.data import (
    IGNORE_INDEX,
    SYSTEM_PROMPT,
    Collator,
    chat_text,
    encode_example,
    encode_prompt,
    ensure_pad_token,
    tokenize_split,
)
from steering.loading.tiny import CHAT_TEMPLATE, build_tokenizer
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
    prefix = tokenizer(prefix_text).input_ids  # with special tokens, as the official code
    assert ex["input_ids"] == tokenizer(full_text).input_ids
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
    assert plain.column_names == ["input_ids", "attention_mask", "labels", "untruncated_length"]
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


@pytest.fixture(scope="module")
def gemma_like():
    """A tokenizer that adds BOS and whose chat template starts with it, as Gemma's does."""
    from tokenizers.processors import TemplateProcessing

    tok = build_tokenizer()
    bos = tok.bos_token_id
    tok._tokenizer.post_processor = TemplateProcessing(
        single="<|bos|> $A", pair="<|bos|> $A $B", special_tokens=[("<|bos|>", bos)]
    )
    tok.chat_template = "{{ bos_token }}" + CHAT_TEMPLATE
    return tok


def _official(tok, prompt, completion=None):
    """The official code's rule: render the template as text, tokenize it like any text."""
    messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": prompt}]
    if completion is not None:
        messages.append({"role": "assistant", "content": completion})
    text = tok.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=completion is None
    )
    return tok(text).input_ids


def test_chat_inputs_start_with_two_bos_as_the_official_code(gemma_like):
    tok, bos = gemma_like, gemma_like.bos_token_id
    prompt_ids = encode_prompt(tok, PROMPT, chat=True)
    assert prompt_ids == _official(tok, PROMPT) and prompt_ids[:3].count(bos) == 2
    assert prompt_ids[:2] == [bos, bos]
    ex = encode_example(tok, PROMPT, COMPLETION, max_length=256, chat=True)
    assert ex["input_ids"] == _official(tok, PROMPT, COMPLETION)[:256]
    assert ex["input_ids"][:2] == [bos, bos]
    n_prefix = len(_official(tok, PROMPT))  # the masked prefix: both BOS and the prompt
    assert ex["labels"][:n_prefix] == [IGNORE_INDEX] * n_prefix
    assert ex["labels"][n_prefix:] == ex["input_ids"][n_prefix:]
    short = encode_example(tok, PROMPT, COMPLETION, max_length=10, chat=True)
    assert short["input_ids"] == _official(tok, PROMPT, COMPLETION)[:10]  # truncation after BOS


def test_single_bos_drops_exactly_the_duplicate(gemma_like):
    tok, bos = gemma_like, gemma_like.bos_token_id
    single = encode_prompt(tok, PROMPT, chat=True, single_bos=True)
    assert single == _official(tok, PROMPT)[1:] and single[0] == bos and single[1] != bos
    ex = encode_example(tok, PROMPT, COMPLETION, max_length=256, chat=True, single_bos=True)
    assert ex["input_ids"] == _official(tok, PROMPT, COMPLETION)[1:]
    n_prefix = len(single)
    assert ex["labels"][:n_prefix] == [IGNORE_INDEX] * n_prefix
    assert ex["labels"][n_prefix:] == ex["input_ids"][n_prefix:]


def test_single_bos_changes_nothing_without_a_duplicate(tokenizer):
    """The project tokenizer adds no BOS and its template starts with none: one rule."""
    for single in (False, True):
        ids = encode_prompt(tokenizer, PROMPT, chat=True, single_bos=single)
        assert ids == tokenizer(chat_text(tokenizer, PROMPT)).input_ids
        assert encode_prompt(tokenizer, PROMPT, single_bos=single) == tokenizer(PROMPT).input_ids


def test_truncation_stats_count_cut_and_empty_rows(tokenizer):
    from datasets import Dataset

    from steering.data import describe_stats, truncation_stats

    task = get_task("BoolQ")
    short = {"passage": "p", "question": "q", "answer": True}
    long = {"passage": "word " * 300, "question": "q", "answer": False}
    ds = Dataset.from_list([short, short, short, long])
    features = tokenize_split(task, ds, tokenizer, max_length=64)
    stats = truncation_stats(features, 64)
    lengths = [
        len(encode_example(tokenizer, task.prompt(r), task.completion(r), 10**6)["input_ids"])
        for r in ds
    ]
    assert stats["rows"] == 4 and stats["max_tokens"] == max(lengths)
    assert stats["truncated"] == 1 and stats["unsupervised"] == 1  # the long row, wholly cut
    assert stats["p50_tokens"] == sorted(lengths)[2] and stats["unsupervised_share"] == 0.25
    supervised = [sum(x != -100 for x in labels) for labels in features["labels"]]
    assert stats["max_supervised"] == max(supervised) > 0  # the memory check's logits rows
    lines = describe_stats("BoolQ", "train", stats)
    assert lines[0].startswith("data: BoolQ train: 4 rows, tokens mean ")
    assert lines[1].startswith("warning: 25.0% of BoolQ train rows (1 of 4) train nothing")
    assert (
        len(
            describe_stats(
                "BoolQ", "train", {**stats, "unsupervised": 0, "unsupervised_share": 0.0}
            )
        )
        == 1
    )
