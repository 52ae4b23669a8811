"""Resumable training: periodic Trainer checkpoints in a resume directory, and picking one up.

A training job with ``save_steps > 0`` lets HF Trainer write ``checkpoint-<step>/`` (the
adapter or trainable weights only, optimizer, scheduler, RNG states, trainer state) into its
resume directory every ``save_steps`` optimizer steps, keeping the last two. A checkpoint counts
only once the Trainer has finished writing it (``COMPLETE`` marker from a callback), so a job
killed mid-save resumes from the one before. ``settings.json`` fingerprints what determines the
trained weights; a rerun with other settings (another lr, seed, data, world size...) starts
afresh instead of resuming into a different run. After a successful run the directory is
deleted: the final checkpoint supersedes it.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from steering.runtime import storage
from steering.runtime.io import write_json

MARKER = "COMPLETE"
SETTINGS = "settings.json"
KEEP = 2  # checkpoints kept: the newest may be half-written when a job is killed

# Settings that change where results go or how they are reported, not the trained weights.
NOT_FINGERPRINTED = frozenset(
    {
        "do_eval",
        "test_only",
        "output_dir",
        "train_log",
        "max_eval_samples",
        "eval_batch_size",
        "wandb",
        "device",
        "logging_steps",
        "progress",
        "save_steps",
        "resume_dir",
        "keep_checkpoints",
    }
)


def fingerprint(settings: dict[str, Any], world_size: int) -> dict[str, Any]:
    """What a checkpoint must agree on to be resumed (the data order depends on world size)."""
    out = {k: v for k, v in settings.items() if k not in NOT_FINGERPRINTED}
    out["world_size"] = world_size
    return json.loads(json.dumps(out, sort_keys=True, default=str))


def step(path: Path) -> int:
    """The optimizer step of a ``checkpoint-<step>`` directory (-1 for other names)."""
    m = re.fullmatch(r"checkpoint-(\d+)", path.name)
    return int(m[1]) if m else -1


def last_checkpoint(resume_dir: Path) -> Path | None:
    """The newest completely written checkpoint in ``resume_dir``, if any."""
    done = [p for p in resume_dir.glob("checkpoint-*") if step(p) >= 0 and (p / MARKER).exists()]
    return max(done, key=step, default=None)


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return [
        f"{k}: {old.get(k)!r} -> {new.get(k)!r}"
        for k in sorted(set(old) | set(new))
        if old.get(k) != new.get(k)
    ]


def prepare(resume_dir: Path, fp: dict[str, Any], main: bool, saving: bool) -> Path | None:
    """The checkpoint to resume from (None: start afresh); stale state is discarded, and
    when ``saving`` checkpoints the directory is readied with the run's fingerprint.

    Every process decides alike from the files; only the main one deletes or writes.
    """
    settings_file = resume_dir / SETTINGS
    checkpoint = last_checkpoint(resume_dir) if resume_dir.is_dir() else None
    if settings_file.exists():
        try:
            old = json.loads(settings_file.read_text())
        except json.JSONDecodeError:
            old = {}
        if old != fp:
            changed = _differences(old, fp)
            if main:
                print(
                    f"not resuming from {resume_dir}: its checkpoints were written with other "
                    f"settings ({'; '.join(changed[:5])}); starting afresh",
                    flush=True,
                )
                shutil.rmtree(resume_dir)
            checkpoint = None
    elif checkpoint is not None:  # checkpoints without a fingerprint: not ours to trust
        checkpoint = None
        if main:
            print(f"not resuming from {resume_dir}: it has no {SETTINGS}; starting afresh")
            shutil.rmtree(resume_dir)
    if main and (saving or resume_dir.is_dir()):
        for stale in resume_dir.glob("checkpoint-*") if resume_dir.is_dir() else []:
            if not (stale / MARKER).exists():  # half-written by a killed job
                shutil.rmtree(stale)
        write_json(settings_file, fp)
    return checkpoint


def finish(resume_dir: Path, keep: bool) -> None:
    """After a successful run: drop the resume state unless asked to keep the checkpoints."""
    if not keep and resume_dir.is_dir():
        shutil.rmtree(resume_dir)


class CompletionMarker(TrainerCallback):
    """Marks a checkpoint complete once the Trainer has written all of it (``on_save`` runs
    after the model, optimizer, scheduler, RNG and trainer state are on disk)."""

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if path.is_dir():
                storage.follow_umask(path)  # the Trainer's safetensors files are 0600
                (path / MARKER).write_text(f"{state.global_step}\n")
        return control
