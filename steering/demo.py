"""An end-to-end demo on a tiny model: train post-block steering with HF Trainer, evaluate by
greedy generation, save the adapter, reload it and check the reload reproduces the outputs.

The toy task (offline, generated): "The <noun> is <colour>. Is it red?" -> "Answer: True." or
"Answer: False.". The frozen random model cannot answer; the steering adapters learn to.
This is ``make run``'s job until the Snakemake pipeline over the paper's tasks exists.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer, TrainingArguments

from steering import SteeredModel, SteeringConfig
from steering.io import write_json
from steering.provenance import git_commit, package_version
from steering.tiny import build_tokenizer, tiny_model

_NOUNS = "cat dog apple book tree river city school friend".split()
_COLOURS = ("red", "blue", "green")
INIT_STD = 0.3


def toy_examples(n: int, seed: int) -> list[tuple[str, str]]:
    """``n`` (prompt, completion) pairs; one in three answers True."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        colour = rng.choice(_COLOURS)
        prompt = f"The {rng.choice(_NOUNS)} is {colour}. Is it red?\n"
        out.append((prompt, f"Answer: {colour == 'red'}."))
    return out


def _features(tokenizer, pairs) -> list[dict[str, list[int]]]:
    rows = []
    for prompt, completion in pairs:
        p = tokenizer(prompt).input_ids
        ids = tokenizer(prompt + completion).input_ids
        rows.append({"input_ids": ids, "labels": [-100] * len(p) + ids[len(p) :]})
    return rows


def _collate(pad_id: int):
    def collate(rows: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        width = max(len(r["input_ids"]) for r in rows)  # right padding, to the batch's longest
        batch = {"input_ids": [], "attention_mask": [], "labels": []}
        for r in rows:
            pad = width - len(r["input_ids"])
            batch["input_ids"].append(r["input_ids"] + [pad_id] * pad)
            batch["attention_mask"].append([1] * len(r["input_ids"]) + [0] * pad)
            batch["labels"].append(r["labels"] + [-100] * pad)
        return {k: torch.tensor(v) for k, v in batch.items()}

    return collate


def _demo_base(vocab_size: int, seed: int):
    return tiny_model(
        "llama",
        vocab_size=vocab_size,
        hidden_size=64,
        num_layers=4,
        seed=seed,
        tie_word_embeddings=True,
        initializer_range=INIT_STD,
    )


@torch.no_grad()
def _generate(model, tokenizer, prompts: list[str], max_new_tokens: int = 10) -> list[str]:
    tokenizer.padding_side = "left"
    enc = tokenizer(prompts, return_tensors="pt", padding=True)
    out = model.generate(
        **enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id
    )
    # the continuation is cut by token ids (never by matching the prompt text)
    return tokenizer.batch_decode(out[:, enc.input_ids.shape[1] :], skip_special_tokens=True)


def _accuracy(outputs: list[str], pairs) -> float:
    return sum(o.strip().startswith(c) for o, (_, c) in zip(outputs, pairs, strict=True)) / len(
        pairs
    )


def run_demo(
    out_dir: str | Path, steps: int = 150, seed: int = 0, lr: float = 1e-2
) -> dict[str, Any]:
    """Train, evaluate, save, reload; write ``summary.json`` and ``checkpoint/`` under out_dir."""
    out_dir = Path(out_dir)
    start = time.time()
    torch.manual_seed(seed)
    tokenizer = build_tokenizer()
    base = _demo_base(len(tokenizer), seed)
    config = SteeringConfig()
    model = SteeredModel(base, config)
    print(model.trainable_summary(), flush=True)

    train, test = toy_examples(512, seed), toy_examples(96, seed + 1)
    test_prompts = [p for p, _ in test]
    with model.disabled():
        base_acc = _accuracy(_generate(model, tokenizer, test_prompts), test)

    args = TrainingArguments(
        output_dir=str(out_dir / "trainer"),
        max_steps=steps,
        per_device_train_batch_size=16,
        learning_rate=lr,
        lr_scheduler_type="linear",
        warmup_steps=0.03,  # a float below 1 is a ratio of the total steps
        weight_decay=0.0,
        logging_steps=max(1, steps // 10),
        save_strategy="no",
        report_to="none",
        use_cpu=not torch.cuda.is_available(),
        seed=seed,
        remove_unused_columns=False,
        disable_tqdm=True,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=_features(tokenizer, train),
        data_collator=_collate(tokenizer.pad_token_id),
    )
    result = trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]

    model.eval()
    outputs = _generate(model, tokenizer, test_prompts)
    steered_acc = _accuracy(outputs, test)
    model.save_pretrained(out_dir / "checkpoint")

    reloaded = SteeredModel.from_pretrained(
        _demo_base(len(tokenizer), seed),
        out_dir / "checkpoint",
    )
    reload_matches = _generate(reloaded, tokenizer, test_prompts) == outputs

    summary = {
        "steering_config": config.to_dict(),
        "trainable_parameters": model.num_trainable_parameters(),
        "trainable_share": model.trainable_share(),
        "steps": steps,
        "train_loss_first": losses[0] if losses else None,
        "train_loss_last": losses[-1] if losses else None,
        "train_runtime_s": result.metrics["train_runtime"],
        "accuracy_base": base_acc,
        "accuracy_steered": steered_acc,
        "reload_reproduces_outputs": reload_matches,
        "examples": [
            {"prompt": p, "output": o} for (p, _), o in zip(test[:3], outputs, strict=False)
        ],
        "provenance": {
            "package_version": package_version(),
            "git_commit": git_commit(),
            "seed": seed,
            "torch": torch.__version__,
            "wall_s": round(time.time() - start, 2),
        },
    }
    write_json(out_dir / "summary.json", summary)
    return summary
