"""Turning task rows into model inputs: training examples with prompt masking, evaluation
prompts, the Gemma chat-template path, and a dynamic-padding collator (PROTOCOL.md section 2).

Training text = prompt + completion; labels = input ids with -100 on the first
len(tokenize(prompt)) positions and on padding; right truncation to the task's max length;
no EOS appended. Gemma models: messages [system "You are a helpful assistant.", user prompt,
assistant completion], the masked prefix being the template rendered with
``add_generation_prompt=True``. The rendered template is tokenized like any text, with the
tokenizer's special tokens, as the official code does: Gemma's template starts with BOS and
its tokenizer adds one, so every Gemma input (training and evaluation) starts with two BOS
tokens. ``single_bos=True`` drops the duplicate (a documented variant, not the protocol).
Evaluation prompts are never truncated.
"""

from __future__ import annotations

from typing import Any

import torch

IGNORE_INDEX = -100
SYSTEM_PROMPT = "You are a helpful assistant."


def chat_text(
    tokenizer, prompt: str, completion: str | None = None, system: str | None = None
) -> str:
    """The chat template rendered as text; with no completion, ready for the assistant turn.
    ``system``: the system turn (default ``SYSTEM_PROMPT``; GSM8K-GRPO has its own)."""
    system = SYSTEM_PROMPT if system is None else system
    messages = [{"role": "system", "content": system}, {"role": "user", "content": prompt}]
    if completion is not None:
        messages.append({"role": "assistant", "content": completion})
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=completion is None
    )


def encode_rendered(tokenizer, text: str, single_bos: bool = False) -> list[int]:
    """A rendered chat template tokenized as the official code does: with the tokenizer's
    special tokens, so a template that starts with BOS gets a second one from a tokenizer
    that adds BOS. ``single_bos``: drop that duplicate (the input then starts with one)."""
    ids = tokenizer(text).input_ids
    bos = tokenizer.bos_token_id
    if single_bos and bos is not None and len(ids) >= 2 and ids[0] == ids[1] == bos:
        return ids[1:]
    return ids


def encode_prompt(
    tokenizer, prompt: str, chat: bool = False, single_bos: bool = False, system: str | None = None
) -> list[int]:
    """Token ids of an evaluation prompt: special tokens as the tokenizer adds them, never
    truncated (the chat path: ``encode_rendered``, with ``system`` as its system turn)."""
    if chat:
        return encode_rendered(tokenizer, chat_text(tokenizer, prompt, system=system), single_bos)
    return tokenizer(prompt).input_ids


def encode_example(
    tokenizer,
    prompt: str,
    completion: str,
    max_length: int,
    chat: bool = False,
    single_bos: bool = False,
) -> dict[str, list[int]]:
    """``input_ids``, ``attention_mask`` and ``labels`` (prompt positions -100), right-truncated;
    ``length``: the tokens before truncation."""
    if chat:
        prefix = encode_prompt(tokenizer, prompt, chat=True, single_bos=single_bos)
        ids = encode_rendered(tokenizer, chat_text(tokenizer, prompt, completion), single_bos)
    else:
        prefix = tokenizer(prompt).input_ids
        ids = tokenizer(prompt + completion).input_ids
    n_masked = min(len(prefix), len(ids))
    labels = [IGNORE_INDEX] * n_masked + ids[n_masked:]
    untruncated = len(ids)
    ids, labels = ids[:max_length], labels[:max_length]
    return {
        "input_ids": ids,
        "attention_mask": [1] * len(ids),
        "labels": labels,
        "untruncated_length": untruncated,
    }


def tokenize_split(
    task,
    dataset,
    tokenizer,
    chat: bool = False,
    max_length: int | None = None,
    single_bos: bool = False,
):
    """Map a split of ``task`` rows to training examples (a ``datasets.Dataset``)."""
    max_length = max_length or task.max_length_for(chat)

    def encode(ex: dict[str, Any]) -> dict[str, list[int]]:
        prompt, completion = task.prompt(ex), task.completion(ex)
        return encode_example(tokenizer, prompt, completion, max_length, chat, single_bos)

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


def truncation_stats(features, max_length: int) -> dict[str, Any]:
    """What right truncation does to a tokenized split (``tokenize_split``'s output): its
    rows, their token counts before truncation (mean, p50, p95, max), how many the max length
    cuts, how many keep no supervised token (their prompt fills the max length, so the
    whole completion is cut and the row trains nothing, as in the official code), and the
    most supervised tokens of a row."""
    lengths = sorted(features["untruncated_length"])
    rows = len(lengths)
    supervised = [sum(x != IGNORE_INDEX for x in labels) for labels in features["labels"]]
    unsupervised = supervised.count(0)

    def quantile(q: float) -> int:
        return lengths[min(rows - 1, round(q * (rows - 1)))] if rows else 0

    return {
        "rows": rows,
        "mean_tokens": round(sum(lengths) / rows, 1) if rows else 0.0,
        "p50_tokens": quantile(0.5),
        "p95_tokens": quantile(0.95),
        "max_tokens": lengths[-1] if rows else 0,
        "max_length": max_length,
        "truncated": sum(n > max_length for n in lengths),
        "unsupervised": unsupervised,
        "unsupervised_share": unsupervised / rows if rows else 0.0,
        # the most positions of a row whose logits training computes (memory.plan_training)
        "max_supervised": max(supervised, default=0),
    }


WASTE_WARNING = 0.01  # warn when more than this share of training rows trains nothing


def describe_stats(task_name: str, split: str, stats: dict[str, Any]) -> list[str]:
    """The stats as one log line, and a one-line warning when more than 1 % of the rows
    train nothing."""
    rows, cut, none = stats["rows"], stats["truncated"], stats["unsupervised"]
    lines = [
        f"data: {task_name} {split}: {rows:,} rows, tokens mean {stats['mean_tokens']:g} / "
        f"p50 {stats['p50_tokens']} / p95 {stats['p95_tokens']} / max {stats['max_tokens']}; "
        f"{cut:,} ({100 * cut / max(rows, 1):.1f}%) truncated at {stats['max_length']}, "
        f"{none:,} ({100 * stats['unsupervised_share']:.1f}%) with no supervised token"
    ]
    if stats["unsupervised_share"] > WASTE_WARNING:
        lines.append(
            f"warning: {100 * stats['unsupervised_share']:.1f}% of {task_name} {split} rows "
            f"({none:,} of {rows:,}) train nothing: their prompt fills the max length of "
            f"{stats['max_length']} tokens, so truncation cuts the whole completion (as in the "
            "official code)"
        )
    return lines


def training_features(task, rows, tokenizer, chat: bool, single_bos: bool, verbose: bool):
    """The training split as the Trainer takes it (``tokenize_split`` plus each row's
    ``length`` for the batch order) and its truncation facts (``truncation_stats``), said in
    one log line when ``verbose``."""
    features = tokenize_split(task, rows, tokenizer, chat=chat, single_bos=single_bos)
    stats = truncation_stats(features, task.max_length_for(chat))
    if verbose:
        for line in describe_stats(task.name, "train", stats):
            print(line, flush=True)
    return features.map(lambda ex: {"length": len(ex["input_ids"])}), stats
