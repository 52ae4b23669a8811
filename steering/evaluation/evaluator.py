"""Evaluating a (steered) model on a task split: records in the official format plus metrics.

Each example gives one record ``{"prompt", "output", "label", "eval", "eval_strict"}``: the
prompt text, the greedy continuation decoded with special tokens skipped, the task label, the
official parser's verdict (``eval``, what the paper's numbers count) and the strict parser's
(``task.score_strict``: the official one with its documented quirks fixed). Records go to
``<split>.json`` (JSON Lines, as the official code writes them, plus ``eval_strict``) and
``<split>.metrics.json`` holds ``accuracy`` and ``accuracy_strict``, counts, throughput and
provenance, and each item's verdicts in order (``correct_items``, ``correct_items_strict``:
strings of 0 and 1) with a fingerprint of the items (``items_sha256``), from which the tables'
paired intervals are computed without reading the records.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import torch
import transformers

from steering.data import encode_prompt
from steering.evaluation.generation import greedy_generate
from steering.runtime.io import atomic_path, json_text
from steering.runtime.provenance import git_commit, items_digest, package_version
from steering.tasks import DataError


def evaluate(
    model,
    tokenizer,
    task,
    dataset,
    chat: bool = False,
    batch_size: int = 16,
    progress: bool = True,
    desc: str | None = None,
    single_bos: bool = False,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Greedy-decode every row of ``dataset`` and score it -> (records, metrics)."""
    if len(dataset) == 0:
        raise ValueError(f"{task.name}: nothing to evaluate (the split is empty)")
    rows = list(dataset)
    prompts = [task.prompt(r) for r in rows]
    # A task asked as a chat for every model (GSM8K-GRPO) brings its own system turn.
    system = getattr(task, "system_prompt", None)
    chat = chat or system is not None
    ids = [encode_prompt(tokenizer, p, chat, single_bos, system) for p in prompts]
    _check_fits(model, task, ids, desc)
    was_training = model.training
    model.eval()
    gen = greedy_generate(
        model,
        ids,
        task.max_new_tokens,
        pad_token_id=tokenizer.pad_token_id,
        batch_size=batch_size,
        progress=progress,
        desc=desc or f"{task.name} eval",
    )
    model.train(was_training)
    records = []
    for row, prompt, tokens in zip(rows, prompts, gen.tokens, strict=True):
        output = tokenizer.decode(tokens, skip_special_tokens=True)
        label = task.label(row)
        records.append(
            {
                "prompt": prompt,
                "output": output,
                "label": label,
                "eval": task.score(output, label),
                "eval_strict": task.score_strict(output, label),
            }
        )
    correct = sum(r["eval"] for r in records)
    strict = sum(r["eval_strict"] for r in records)
    metrics = {
        "accuracy": correct / len(records),
        "correct": correct,
        "accuracy_strict": strict / len(records),
        "correct_strict": strict,
        "n": len(records),
        "chance": task.chance(rows),  # guessing on these rows (steering/tasks/base.py)
        # per item, in order, for the paired intervals of the tables (steering/pipeline/items.py)
        "correct_items": "".join("1" if r["eval"] else "0" for r in records),
        "correct_items_strict": "".join("1" if r["eval_strict"] else "0" for r in records),
        "items_sha256": items_digest(records),
        "tokens_generated": gen.num_generated,
        "wall_s": round(gen.wall_s, 3),
        "tokens_per_s": round(gen.num_generated / gen.wall_s, 2) if gen.wall_s > 0 else None,
        "batch_size": batch_size,
        "max_new_tokens": task.max_new_tokens,
        "chat_template": chat,
        "single_bos": single_bos,
    }
    return records, metrics


def context_length(model) -> int | None:
    """The longest sequence the model was built for, from its config (None if it says not)."""
    config = getattr(model, "config", None) or getattr(
        getattr(model, "base_model", None), "config", None
    )
    if hasattr(config, "get_text_config"):
        config = config.get_text_config()
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _check_fits(model, task, ids: list[list[int]], desc: str | None) -> None:
    """Stop before generating when a prompt plus its answer budget exceeds the context:
    the protocol does not truncate prompts, and a model run past its positions either fails
    deep inside attention (after allocating for the whole batch) or silently degrades."""
    limit = context_length(model)
    if limit is None:
        return
    for i, row in enumerate(ids):
        if len(row) + task.max_new_tokens > limit:
            raise DataError(
                f"{desc or task.name}: row {i} has a {len(row):,}-token prompt; with "
                f"{task.max_new_tokens} new tokens that exceeds the model's context of "
                f"{limit:,} positions. Drop or shorten that row in the data, or use a model "
                "with a longer context (prompts are never truncated, as in the protocol)"
            )


def provenance(settings: dict[str, Any], task, seed: int | None) -> dict[str, Any]:
    """What every result file records about how it was made."""
    return {
        "config": settings,
        "package_version": package_version(),
        "git_commit": git_commit(),
        "seed": seed,
        "task": task.name,
        "protocol_version": task.protocol_version,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }


def write_results(
    records_path: str | Path, split: str, records, metrics, prov
) -> tuple[Path, Path]:
    """Records as JSON Lines at ``records_path`` (``<split>.json``) and the metrics beside it
    (``<split>.metrics.json``): both written to temp files first, then renamed, records
    first, so a write that fails (a full disk) leaves neither, and never new records beside
    old metrics."""
    records_path = Path(records_path)
    metrics_path = records_path.with_suffix(".metrics.json")
    with atomic_path(metrics_path) as metrics_tmp, atomic_path(records_path) as records_tmp:
        with records_tmp.open("w", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        body = {**metrics, "split": split, "provenance": prov}
        metrics_tmp.write_text(json_text(body), encoding="utf-8")
    return records_path, metrics_path


def evaluate_splits(
    model,
    tokenizer,
    task,
    splits,
    outputs: dict[str, str | Path],
    prov: dict[str, Any],
    chat: bool = False,
    batch_size: int = 16,
    max_samples: int | None = None,
    progress: bool = True,
    single_bos: bool = False,
) -> list[dict[str, Any]]:
    """Evaluate each split named in ``outputs`` (split -> records path) and write its files;
    returns the metrics of each, with ``split`` and ``records`` added."""
    results = []
    for split, path in outputs.items():
        data = splits[split]
        if max_samples:
            data = data.select(range(min(max_samples, len(data))))
        records, metrics = evaluate(
            model,
            tokenizer,
            task,
            data,
            chat=chat,
            batch_size=batch_size,
            progress=progress,
            desc=f"{task.name} {split}",
            single_bos=single_bos,
        )
        records_path, _ = write_results(path, split, records, metrics, prov)
        results.append({"split": split, "records": str(records_path), **metrics})
    return results
