"""Resumable training: a killed training process, rerun with the same command, resumes from its
last complete checkpoint and ends with the uninterrupted run's adapter, for every method; stale
or half-written resume state is never trusted."""

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from steering.config import SteeringConfig
from steering.loading.tiny import save_tiny_model
from steering.tasks import get_task
from steering.tasks.files import write_prepared
from steering.training import resume
from steering.training.run import TrainSettings, train
from tests.conftest import cpu_env

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    d = tmp_path_factory.mktemp("resume")
    save_tiny_model(d / "m", "llama", hidden_size=32, num_layers=2)
    task = get_task("BoolQ")
    write_prepared(task, task.make_splits(task.synthetic(scale=0.1)), d / "data", {"k": "s"})
    return d


def _settings(ws, out: str, **kw) -> TrainSettings:
    base = dict(
        model_name=str(ws / "m"),
        dataset_name="BoolQ",
        data_dir=str(ws / "data"),
        max_train_samples=48,  # 48 / (bs 2 x accumulation 2) = 12 steps an epoch
        bs=2,
        epochs=2,
        lr=0.01,
        seed=3,
        save_steps=9,  # checkpoints 9, 18 (mid epoch 2) and 24 (the end); the last two kept
        output_dir=str(ws / out),
        resume_dir=str(ws / f"{out}.resume"),
        progress=False,
    )
    return TrainSettings(**{**base, **kw})


def _weights(path: Path) -> dict[str, torch.Tensor]:
    """Every trained tensor of a checkpoint directory, whatever the method's format."""
    out = {}
    for f in sorted(path.rglob("*.safetensors")):
        out.update({f"{f.relative_to(path)}:{k}": v for k, v in load_file(f).items()})
    assert out, f"no weights under {path}"
    return out


def _assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=0, msg=k)


METHODS = {
    "steering": {},
    "last_token": {"steering": SteeringConfig(rank=4, positions="last")},
    "vector": {"steering": SteeringConfig(kind="vector")},
    "lora": {"method": "lora", "options": {"rank": 2}},
    "full": {"method": "full"},
    "joint": {"method": "joint", "options": {"lora_rank": 2, "orthogonal_freq": "step"}},
    "reft": {"method": "reft", "options": {"rank": 2}},
    "grouped": {"length_grouping": True},  # the opt-in order resumes exactly too
}


@pytest.mark.parametrize("method", list(METHODS))
def test_resuming_from_a_kept_checkpoint_reproduces_the_run(ws, method):
    kw = METHODS[method]
    straight = train(_settings(ws, f"{method}-a", keep_checkpoints=True, **kw))
    assert straight["optimizer_steps"] == 24 and straight["resumed_from_step"] is None
    order = "length-grouped" if kw.get("length_grouping") else "official"
    recorded = json.loads((ws / f"{method}-a" / "training.json").read_text())
    assert recorded["batch_order"] == order
    assert recorded["settings"]["length_grouping"] is bool(kw.get("length_grouping"))
    kept = sorted(resume.step(p) for p in (ws / f"{method}-a.resume").glob("checkpoint-*"))
    assert kept == [18, 24]  # the last two; the final step is saved too
    # step 18 is mid epoch 2: that epoch's order must not depend on the restart (mid epoch 1:
    # the kill test below)
    step = 18
    out = f"{method}-b{step}"
    shutil.copytree(ws / f"{method}-a.resume", ws / f"{out}.resume")
    for other in (ws / f"{out}.resume").glob("checkpoint-*"):
        if other.name != f"checkpoint-{step}":
            shutil.rmtree(other)
    resumed = train(_settings(ws, out, **kw))
    assert resumed["resumed_from_step"] == step
    assert resumed["optimizer_steps"] == 24
    _assert_same(_weights(ws / f"{method}-a"), _weights(ws / out))
    assert not (ws / f"{out}.resume").exists()  # done: the resume state is dropped


def test_a_run_keeps_its_last_two_complete_checkpoints_and_drops_them_at_the_end(ws):
    train(_settings(ws, "keep", keep_checkpoints=True, save_steps=5))
    kept = sorted(resume.step(p) for p in (ws / "keep.resume").glob("checkpoint-*"))
    assert kept == [20, 24]
    assert all((ws / "keep.resume" / f"checkpoint-{s}" / resume.MARKER).exists() for s in kept)
    assert json.loads((ws / "keep.resume" / resume.SETTINGS).read_text())["seed"] == 3
    train(_settings(ws, "drop", save_steps=5))
    assert not (ws / "drop.resume").exists()
    assert (ws / "drop" / "adapter.safetensors").exists()


def test_half_written_and_foreign_checkpoints_are_not_resumed(ws, capsys):
    straight = _settings(ws, "ref", keep_checkpoints=True)
    train(straight)
    # a checkpoint without its completion marker (killed mid-save): ignored and removed
    shutil.copytree(ws / "ref.resume", ws / "half.resume")
    (ws / "half.resume" / "checkpoint-24" / resume.MARKER).unlink()
    half = train(_settings(ws, "half"))
    assert half["resumed_from_step"] == 18
    _assert_same(_weights(ws / "ref"), _weights(ws / "half"))
    # checkpoints written under other settings: a fresh start, with a message saying why
    shutil.copytree(ws / "ref.resume", ws / "other.resume")
    other = train(_settings(ws, "other", lr=0.02))
    assert other["resumed_from_step"] is None
    assert "not resuming" in capsys.readouterr().out
    train(_settings(ws, "fresh", lr=0.02))
    _assert_same(_weights(ws / "fresh"), _weights(ws / "other"))
    # and checkpoints with no settings file at all
    shutil.copytree(ws / "ref.resume", ws / "bare.resume")
    (ws / "bare.resume" / resume.SETTINGS).unlink()
    assert train(_settings(ws, "bare"))["resumed_from_step"] is None


def test_settings_that_do_not_change_the_weights_do_not_block_resuming():
    a = TrainSettings(model_name="m", dataset_name="BoolQ", output_dir="x", eval_batch_size=4)
    b = TrainSettings(model_name="m", dataset_name="BoolQ", output_dir="y", do_eval=True)
    assert resume.fingerprint(a.to_dict(), 1) == resume.fingerprint(b.to_dict(), 1)
    c = TrainSettings(model_name="m", dataset_name="BoolQ", output_dir="x", bs=4)
    assert resume.fingerprint(a.to_dict(), 1) != resume.fingerprint(c.to_dict(), 1)
    assert resume.fingerprint(a.to_dict(), 1) != resume.fingerprint(a.to_dict(), 2)


def test_negative_save_steps_is_refused():
    with pytest.raises(ValueError, match="save_steps"):
        TrainSettings(model_name="m", dataset_name="BoolQ", save_steps=-1)


def _train_command(ws: Path, out: str) -> list[str]:
    return [
        sys.executable,
        str(ROOT / "scripts" / "train.py"),
        "--model-name",
        str(ws / "big"),
        "--device",
        "cpu",
        "--dataset-name",
        "BoolQ",
        "--data-dir",
        str(ws / "data"),
        "--max-train-samples",
        "200",  # 200 / (bs 1 x accumulation 2) = 100 steps: long enough to kill mid-run
        "--bs",
        "1",
        "--lr",
        "0.01",
        "--seed",
        "5",
        "--save-steps",
        "10",
        "--output-dir",
        str(ws / out),
        "--no-progress",
    ]


def test_a_killed_training_process_resumes_to_the_uninterrupted_adapter(ws):
    save_tiny_model(ws / "big", "llama", hidden_size=64, num_layers=4)
    env = cpu_env(OMP_NUM_THREADS="1")
    done = subprocess.run(_train_command(ws, "whole"), env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]

    killed = subprocess.Popen(
        _train_command(ws, "cut"), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    resume_dir = ws / "cut.resume"
    deadline = time.monotonic() + 120
    while resume.last_checkpoint(resume_dir) is None if resume_dir.is_dir() else True:
        assert killed.poll() is None, "training ended before it could be interrupted"
        assert time.monotonic() < deadline, "no checkpoint was written"
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL
    assert not (ws / "cut" / "adapter.safetensors").exists()
    cut_at = resume.step(resume.last_checkpoint(resume_dir))
    assert 10 <= cut_at < 100

    rerun = subprocess.run(_train_command(ws, "cut"), env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "resuming from" in rerun.stdout and "resumed from step" in rerun.stdout
    summary = json.loads((ws / "cut" / "training.json").read_text())
    assert summary["resumed_from_step"] == cut_at and summary["optimizer_steps"] == 100
    _assert_same(_weights(ws / "whole"), _weights(ws / "cut"))
    # the log of the resumed run carries the whole run's history, not only the resumed part
    log = [json.loads(line) for line in (ws / "cut" / "train_log.jsonl").read_text().splitlines()]
    whole = [
        json.loads(line) for line in (ws / "whole" / "train_log.jsonl").read_text().splitlines()
    ]
    assert [h.get("loss") for h in log if "loss" in h] == [
        h.get("loss") for h in whole if "loss" in h
    ]
