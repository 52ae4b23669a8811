"""Every output follows the user's umask: checkpoints of every method (safetensors writes 0600
whatever the umask), the resume checkpoints, the rescue directory, evaluation files, prepared
data and a built model. On a shared file system the group must read what the pipeline made."""

import contextlib
import os
import stat
from pathlib import Path

import pytest

from steering.evaluation.inference import InferenceSettings, run_inference
from steering.loading.tiny import save_tiny_model
from steering.runtime import storage
from steering.tasks import get_task
from steering.tasks.files import write_prepared
from steering.training.run import TrainSettings, train

# the trained methods, each with the options its smallest checkpoint needs
METHOD_RUNS = {
    "steering": {},
    "lora": {"method": "lora"},
    "full": {"method": "full"},
    "reft": {"method": "reft"},
    "joint": {"method": "joint"},
}


@contextlib.contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def wrong_modes(root: Path, mask: int) -> list[str]:
    """Entries under ``root`` (itself included) whose permission bits are not what a plain
    ``open``/``mkdir`` gives under ``mask``."""
    bad = []
    for entry in [root, *root.rglob("*")]:
        if entry.is_symlink():
            continue
        want = (0o777 if entry.is_dir() else 0o666) & ~mask
        got = stat.S_IMODE(entry.stat().st_mode)
        if got != want:
            bad.append(f"{entry.relative_to(root.parent)}: {oct(got)} (want {oct(want)})")
    return bad


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_every_output_follows_the_umask(tmp_path, mask, monkeypatch):
    monkeypatch.setenv(storage.RESCUE_ENV, str(tmp_path / "rescue"))
    (tmp_path / "rescue").mkdir()
    task = get_task("BoolQ")
    with umask(mask):
        save_tiny_model(tmp_path / "model", "llama", hidden_size=32, num_layers=2)
        write_prepared(
            task, task.make_splits(task.synthetic(scale=0.02)), tmp_path / "data", {"k": "s"}
        )
        runs = tmp_path / "runs"

        def run(out: Path, bs: int, **options) -> None:
            train(
                TrainSettings(
                    model_name=str(tmp_path / "model"),
                    dataset_name="BoolQ",
                    data_dir=str(tmp_path / "data"),
                    max_train_samples=4,
                    bs=bs,
                    output_dir=str(out),
                    progress=False,
                    **options,
                )
            )

        for name, options in METHOD_RUNS.items():
            run(runs / name, 4, **options)
        # resume checkpoints kept after the run (HF Trainer's own files)
        run(
            runs / "resumable",
            2,
            save_steps=1,
            keep_checkpoints=True,
            resume_dir=str(tmp_path / "resume"),
        )
        run_inference(
            InferenceSettings(
                model_name=str(tmp_path / "model"),
                dataset_name="BoolQ",
                ckpt_path=str(runs / "steering"),
                splits=("validation", "test"),
                output_dir=str(tmp_path / "eval"),
                data_dir=str(tmp_path / "data"),
                max_eval_samples=4,
                progress=False,
            )
        )
        rescued = storage.rescue(
            lambda d: (d / "adapter.safetensors").write_bytes(b"x"), tmp_path / "x", "run"
        )
    assert list((tmp_path / "resume").glob("checkpoint-*")), "no resume checkpoint was kept"
    assert {p.name for p in (runs / "full").rglob("*.safetensors")}, "full wrote no weights"
    for root in ("model", "data", "runs", "resume", "eval"):
        assert wrong_modes(tmp_path / root, mask) == [], root
    assert rescued is not None and wrong_modes(rescued, mask) == []
