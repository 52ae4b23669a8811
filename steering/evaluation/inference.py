"""Evaluating a saved checkpoint (any method's, or the official code's) on splits of a task.

The checkpoint's method (``steering.methods.for_checkpoint``: ``method.json``, else
post-block steering, else, without a checkpoint, the base model) loads it. Our checkpoints
describe themselves, so no training flag needs repeating; flags that the user does pass
(``--no-adapter``, ``--adapter-rank``, ``--submodules``, ``--intervene-last``) must agree with
the checkpoint, and a disagreement is an error naming the flag. Official checkpoints
(``pytorch_model.bin`` / ``model.safetensors``) carry no config: kind, rank and sites come
from their keys, the activation and positions from the flags.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from steering.architectures import uses_chat_template
from steering.evaluation.evaluator import evaluate_splits, provenance
from steering.loading.loader import load_tokenizer, pick_device
from steering.methods import for_checkpoint
from steering.runtime import gpu_lease, storage
from steering.runtime.precision import apply as apply_precision
from steering.runtime.precision import resolve
from steering.tasks import get_task


@dataclass
class InferenceSettings:
    model_name: str
    dataset_name: str
    ckpt_path: str | None = None  # None: the base model without steering
    splits: tuple[str, ...] = ("test",)
    output_file: str | None = None  # one split only
    output_dir: str | None = None  # <output_dir>/<split>.json for each split
    # must-match flags: None = not given
    no_adapter: bool | None = None
    adapter_rank: int | None = None
    submodules: bool | None = None
    intervene_last: bool | None = None
    # for official checkpoints
    activation: str | None = "silu"
    data_dir: str | None = None
    max_eval_samples: int | None = None
    eval_batch_size: int = 16
    precision: str = "fp32"  # fp32 | tf32 | bf16 (steering/runtime/precision.py)
    device: str | None = None
    device_map: str | None = None  # "auto": spread the model over the visible GPUs
    offload_folder: str | None = None  # with device_map: where offloaded weights are written
    seed: int = 42
    progress: bool = True
    single_bos: bool = False  # chat path: drop the template's BOS the tokenizer doubles

    def __post_init__(self) -> None:
        self.splits = tuple(self.splits)
        bad = [s for s in self.splits if s not in ("train", "validation", "test")]
        if bad or not self.splits or len(set(self.splits)) != len(self.splits):
            raise ValueError(
                f"--split {list(self.splits)} is invalid: give distinct names among "
                "train, validation, test"
            )
        if self.output_file and (self.output_dir or len(self.splits) > 1):
            raise ValueError(
                "--output-file takes one split and no --output-dir; use --output-dir for several"
            )
        if self.eval_batch_size < 1:
            raise ValueError(f"--eval-batch-size must be >= 1, got {self.eval_batch_size}")
        self.precision = resolve(self.precision)


def output_path(s: InferenceSettings, split: str) -> Path:
    """--output-file, else <output-dir or the checkpoint's directory>/<split>.json."""
    if s.output_file:
        return Path(s.output_file)
    if s.output_dir:
        return Path(s.output_dir) / f"{split}.json"
    if s.ckpt_path is None:
        return Path("outputs") / f"{get_task(s.dataset_name).name}_base" / f"{split}.json"
    path = Path(s.ckpt_path)
    return (path if path.is_dir() else path.parent) / f"{split}.json"


def run_inference(s: InferenceSettings) -> list[dict[str, Any]]:
    """Evaluate every requested split with the model loaded once; one result per split."""
    task = get_task(s.dataset_name)
    for split in s.splits:
        out = output_path(s, split)
        if out.is_dir():
            raise ValueError(f"output file {out} is a directory; give a file path")
        storage.probe(out.parent)  # read-only or full: stop before loading anything
    splits = task.load(data_dir=s.data_dir)
    tokenizer = load_tokenizer(s.model_name)
    path = Path(s.ckpt_path) if s.ckpt_path is not None else None
    if path is not None and not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    method = for_checkpoint(path)
    method.check_precision(s.precision)
    device = pick_device(s.device)
    gpu_lease.say_if_on_cpu(device.type, "evaluates")
    apply_precision(s.precision, device)
    model, base = method.load(path, s)
    settings = {**asdict(s), **method.provenance(model, path)}
    return evaluate_splits(
        model,
        tokenizer,
        task,
        splits,
        {split: output_path(s, split) for split in s.splits},
        provenance(settings, task, s.seed),
        chat=uses_chat_template(base.config.model_type),
        batch_size=s.eval_batch_size,
        max_samples=s.max_eval_samples,
        progress=s.progress,
        single_bos=s.single_bos,
    )
