"""Evaluating a saved checkpoint (ours or the official code's) on one split of a task.

Our checkpoints describe themselves, so no training flag needs repeating; flags that the user
does pass (``--no-adapter``, ``--adapter-rank``, ``--submodules``, ``--intervene-last``) must
agree with the checkpoint, and a disagreement is an error naming the flag. Official
checkpoints (``pytorch_model.bin`` / ``model.safetensors``) carry no config: kind, rank and
sites come from their keys, the activation and positions from the flags.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from steering import baselines
from steering.checkpoint import CONFIG_NAME
from steering.config import SteeringConfig
from steering.data import uses_chat_template
from steering.evaluation import evaluate_splits, provenance
from steering.loader import load_base_model, load_tokenizer
from steering.model import SteeredModel
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
    dtype: str = "float32"
    device: str | None = None
    device_map: str | None = None  # "auto": spread the model over the visible GPUs
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


def check_flags(s: InferenceSettings, config: SteeringConfig, source: str) -> None:
    """Every flag the user gave must describe the checkpoint's steering."""
    actual = {
        "--no-adapter": config.kind == "vector",
        "--adapter-rank": config.rank if config.kind == "adapter" else None,
        "--submodules": config.sites != ("block",),
        "--intervene-last": config.positions == "last",
    }
    given = {
        "--no-adapter": s.no_adapter,
        "--adapter-rank": s.adapter_rank,
        "--submodules": s.submodules,
        "--intervene-last": s.intervene_last,
    }
    for flag, value in given.items():
        if value is not None and value != actual[flag]:
            raise ValueError(
                f"{flag}={value} disagrees with {source}, which was trained with "
                f"{flag}={actual[flag]} ({config.variant_name()}); drop the flag or pick the "
                f"matching checkpoint"
            )


def _is_ours(path: Path) -> bool:
    return path.is_dir() and (path / CONFIG_NAME).is_file()


def load_steered(s: InferenceSettings, base) -> SteeredModel | None:
    if s.ckpt_path is None:
        return None
    path = Path(s.ckpt_path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if _is_ours(path):
        model = SteeredModel.from_pretrained(base, path)
    else:
        model = SteeredModel.from_official_checkpoint(
            base, path, activation=s.activation, positions="last" if s.intervene_last else "all"
        )
    check_flags(s, model.steering_config, f"checkpoint {path}")
    return model


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
        if out.parent.exists() and not out.parent.is_dir():
            raise ValueError(f"output directory {out.parent} exists and is a file")
    splits = task.load(data_dir=s.data_dir)
    tokenizer = load_tokenizer(s.model_name)
    settings = asdict(s)
    if s.ckpt_path is not None and baselines.is_checkpoint(s.ckpt_path):  # LoRA / full
        info = json.loads((Path(s.ckpt_path) / baselines.METHOD_FILE).read_text())
        full = info.get("method") == "full"  # a whole saved model: no base to load first
        base = None if full else load_base_model(s.model_name, s.dtype, s.device, s.device_map)
        model = baselines.load(base, s.ckpt_path, s.dtype, s.device, s.device_map)
        base = base if base is not None else model
        settings["method"] = info
    else:
        base = load_base_model(s.model_name, s.dtype, s.device, s.device_map)
        steered = load_steered(s, base)
        model = steered if steered is not None else base
        settings["steering"] = steered.steering_config.to_dict() if steered is not None else None
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
