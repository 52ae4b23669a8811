"""scripts/train.py and scripts/inference.py end to end, through the real scripts."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from steering.loading.tiny import save_tiny_model
from steering.tasks import get_task
from steering.tasks.files import write_prepared
from tests.conftest import cpu_env

ROOT = Path(__file__).resolve().parent.parent
VARIANT = "adapter_all_nonlinear_silu"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A tiny model directory and prepared synthetic ListOps data."""
    ws = tmp_path_factory.mktemp("ws")
    save_tiny_model(ws / "tiny-llama", "llama", hidden_size=64, num_layers=2)
    task = get_task("ListOps")
    write_prepared(
        task,
        task.make_splits(task.synthetic(seed=0, scale=0.1)),
        ws / "data",
        {"kind": "synthetic"},
    )
    return ws


def script(name, *args, cwd, env=None):
    env = cpu_env(**{"WANDB_MODE": "disabled", **(env or {})})
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / name), *map(str, args), "--no-progress"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_train_then_inference(workspace):
    ws = workspace
    train = script(
        "train.py",
        "--model-name",
        ws / "tiny-llama",
        "--dataset-name",
        "ListOps",
        "--data-dir",
        ws / "data",
        "--lr",
        "5e-3",
        "--epochs",
        "2",
        "--bs",
        "8",
        "--max-train-samples",
        "160",
        "--do-eval",
        "--max-eval-samples",
        "12",
        "--eval-batch-size",
        "4",
        "--seed",
        "3",
        cwd=ws,
    )
    assert train.returncode == 0, train.stderr[-3000:]
    assert "trainable params: 2,048" in train.stdout  # 2 r H L = 2 * 8 * 64 * 2
    ckpt = ws / "ListOps_model" / f"tiny-llama_{VARIANT}"
    assert {"adapter.safetensors", "steering_config.json", "training.json"} <= {
        p.name for p in ckpt.iterdir()
    }
    summary = json.loads((ckpt / "training.json").read_text())
    assert summary["optimizer_steps"] == 20  # 160 examples / (8 x 2) x 2 epochs
    losses = [loss for _, loss in summary["loss_history"]]
    assert len(losses) == 2 and losses[-1] < losses[0]
    outdir = ws / "outputs" / "ListOps_model" / f"tiny-llama_{VARIANT}"
    for split in ("validation", "test"):
        records = [json.loads(line) for line in (outdir / f"{split}.json").read_text().splitlines()]
        assert len(records) == 12 and set(records[0]) == {
            "prompt",
            "output",
            "label",
            "eval",
            "eval_strict",
        }
        metrics = json.loads((outdir / f"{split}.metrics.json").read_text())
        assert metrics["n"] == 12 and metrics["provenance"]["protocol_version"] == 1
        assert metrics["provenance"]["seed"] == 3 and metrics["provenance"]["config"]["lr"] == 5e-3

    # inference from the checkpoint reproduces the in-process evaluation exactly
    inf = script(
        "inference.py",
        "--model-name",
        ws / "tiny-llama",
        "--dataset-name",
        "ListOps",
        "--data-dir",
        ws / "data",
        "--ckpt-path",
        ckpt,
        "--split",
        "test",
        "--max-eval-samples",
        "12",
        "--eval-batch-size",
        "5",
        cwd=ws,
    )
    assert inf.returncode == 0, inf.stderr[-3000:]
    assert (ckpt / "test.json").read_text() == (outdir / "test.json").read_text()
    assert (
        json.loads((ckpt / "test.metrics.json").read_text())["provenance"]["config"]["steering"][
            "rank"
        ]
        == 8
    )

    # the same adapter in the official format, evaluated through the official path
    official = {f"adapters.{k}": v for k, v in load_file(ckpt / "adapter.safetensors").items()}
    official["model.lm_head.weight"] = torch.zeros(
        2, 2
    )  # the official file also holds base weights
    (ws / "official").mkdir()
    torch.save(official, ws / "official" / "pytorch_model.bin")
    off = script(
        "inference.py",
        "--model-name",
        ws / "tiny-llama",
        "--dataset-name",
        "ListOps",
        "--data-dir",
        ws / "data",
        "--ckpt-path",
        ws / "official" / "pytorch_model.bin",
        "--max-eval-samples",
        "12",
        "--output-file",
        ws / "official" / "out.json",
        cwd=ws,
    )
    assert off.returncode == 0, off.stderr[-3000:]
    assert (ws / "official" / "out.json").read_text() == (outdir / "test.json").read_text()
    assert (ws / "official" / "out.metrics.json").exists()

    # a flag that disagrees with the checkpoint is an error naming it
    bad = script(
        "inference.py",
        "--model-name",
        ws / "tiny-llama",
        "--dataset-name",
        "ListOps",
        "--data-dir",
        ws / "data",
        "--ckpt-path",
        ckpt,
        "--adapter-rank",
        "4",
        "--output-file",
        ws / "bad.json",
        cwd=ws,
    )
    assert bad.returncode == 2 and "--adapter-rank=4 disagrees with checkpoint" in bad.stderr
    assert "Traceback" not in bad.stderr and not (ws / "bad.json").exists()


@pytest.mark.slow
def test_wandb_offline_run(workspace, tmp_path):
    proc = script(
        "train.py",
        "--model-name",
        workspace / "tiny-llama",
        "--dataset-name",
        "ListOps",
        "--data-dir",
        workspace / "data",
        "--max-train-samples",
        "32",
        "--wandb",
        "--output-dir",
        tmp_path / "ckpt",
        cwd=tmp_path,
        env={"WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path), "WANDB_SILENT": "true"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("run-*.wandb"))
    assert (tmp_path / "ckpt" / "adapter.safetensors").exists()


@pytest.mark.slow
def test_without_wandb_flag_nothing_imports_wandb(workspace, tmp_path):
    argv = [
        "train.py",
        "--model-name",
        str(workspace / "tiny-llama"),
        "--dataset-name",
        "ListOps",
        "--data-dir",
        str(workspace / "data"),
        "--max-train-samples",
        "16",
        "--output-dir",
        str(tmp_path / "ckpt"),
        "--no-progress",
    ]
    code = (
        f"import runpy, sys\nsys.argv = {argv!r}\n"
        f"try:\n    runpy.run_path({str(ROOT / 'scripts' / 'train.py')!r}, run_name='__main__')\n"
        "except SystemExit as e:\n    assert e.code == 0, e.code\n"
        "print('wandb imported:', 'wandb' in sys.modules)\n"
    )
    env = cpu_env()
    env.pop("WANDB_MODE", None)
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "wandb imported: False" in proc.stdout
    assert not (tmp_path / "wandb").exists()


@pytest.mark.slow
def test_intervene_last_trains_and_evaluates(workspace, tmp_path):
    """--intervene-last is recorded in the checkpoint, and inference of that checkpoint
    gives the greedy outputs the training run's own evaluation gave."""
    ws, out = workspace, tmp_path / "last"
    common = ["--model-name", ws / "tiny-llama", "--dataset-name", "ListOps"]
    common += ["--data-dir", ws / "data", "--intervene-last", "--max-eval-samples", "4"]
    train = script(
        "train.py",
        *common,
        "--max-train-samples",
        "16",
        "--do-eval",
        "--test-only",
        "--output-dir",
        out,
        cwd=tmp_path,
    )
    assert train.returncode == 0, train.stderr[-3000:]
    config = json.loads((out / "steering_config.json").read_text())
    assert config["steering"]["positions"] == "last"
    trained_eval = (out / "test.json").read_text()
    assert len(trained_eval.splitlines()) == 4
    again = script("inference.py", *common, "--ckpt-path", out, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (out / "test.json").read_text() == trained_eval  # the same greedy outputs
