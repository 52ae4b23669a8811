"""Several processes for one run: scripts/train.py under torchrun (HF Trainer's DDP, gloo on
CPU) with 2 processes x batch 4 ends with the adapter of one process x batch 8 (the same
effective batch), and only the main process writes. Evaluation with device_map="auto" gives
the outputs of the plain single-device load."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from steering.evaluation.inference import InferenceSettings, run_inference
from steering.loading.tiny import save_tiny_model
from steering.tasks import get_task
from steering.tasks.files import write_prepared
from tests.conftest import cpu_env

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    d = tmp_path_factory.mktemp("ddp")
    save_tiny_model(d / "m", "llama", hidden_size=32, num_layers=2)
    for name in ("BoolQ", "GSM8K"):
        task = get_task(name)
        write_prepared(task, task.make_splits(task.synthetic(scale=0.05)), d / name, {"k": "s"})
    return d


def _train(
    ws: Path, out: str, bs: int, launcher: list[str], *more: str, device: str = "cpu"
) -> subprocess.CompletedProcess:
    """scripts/train.py on the tiny model: on the CPU (gloo under torchrun, no GPU visible,
    whatever the machine has) unless a GPU test asks for ``device="cuda"``."""
    args = [
        str(ROOT / "scripts" / "train.py"),
        *("--model-name", str(ws / "m"), "--dataset-name", "GSM8K"),
        *("--data-dir", str(ws / "GSM8K"), "--max-train-samples", "64"),
        *("--bs", str(bs), "--lr", "0.01", "--seed", "4", "--epochs", "2"),
        *("--output-dir", str(ws / out), "--no-progress", "--device", device, *more),
    ]
    env = (
        cpu_env(OMP_NUM_THREADS="1") if device == "cpu" else {**os.environ, "OMP_NUM_THREADS": "1"}
    )
    return subprocess.run([*launcher, *args], env=env, capture_output=True, text=True)


@pytest.mark.slow
def test_two_ddp_processes_train_the_adapter_of_one_process_with_the_same_batch(ws):
    single = _train(ws, "single", 8, [sys.executable])
    assert single.returncode == 0, single.stderr[-3000:]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    ddp = _train(ws, "ddp", 4, [*torchrun, "--nproc-per-node", "2"])
    assert ddp.returncode == 0, ddp.stderr[-3000:]

    a = load_file(ws / "single" / "adapter.safetensors")
    b = load_file(ws / "ddp" / "adapter.safetensors")
    assert a.keys() == b.keys()
    assert max(a[k].abs().max().item() for k in a) > 1e-3  # it trained
    for k in a:  # same examples per optimizer step; only the reduction order differs
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=1e-5, msg=k)
    summary = json.loads((ws / "ddp" / "training.json").read_text())
    assert summary["world_size"] == 2
    single_summary = json.loads((ws / "single" / "training.json").read_text())
    assert summary["optimizer_steps"] == single_summary["optimizer_steps"] == 8
    # the main process reports once; the other one stays quiet
    assert ddp.stdout.count("saved ") == 1
    assert ddp.stdout.count("trainable params") == 1


@pytest.mark.slow
def test_full_fine_tuning_sharded_over_two_processes_equals_one_process(ws):
    """FSDP (version 2, gloo on CPU): 2 processes x batch 4, weights, gradients and AdamW
    states sharded, end with the weights of 1 process x batch 8, within 1e-5; the saved
    checkpoint is one ordinary HF model directory."""
    from transformers import AutoModelForCausalLM

    full = ("--method", "full", "--lr", "0.001")
    single = _train(ws, "full-single", 8, [sys.executable], *full)
    assert single.returncode == 0, single.stderr[-3000:]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    two = [*torchrun, "--nproc-per-node", "2"]
    evaluate = ("--do-eval", "--test-only", "--max-eval-samples", "4")
    sharded = _train(ws, "full-fsdp", 4, two, *full, "--sharding", "fsdp", *evaluate)
    assert sharded.returncode == 0, sharded.stderr[-3000:]
    # accelerate shards GPU processes only: here the same run is DDP, and it says so
    assert sharded.stdout.count("on the CPU this run is DDP") == 1
    assert "GSM8K test: accuracy" in sharded.stdout
    a = load_file(ws / "full-single/model/model.safetensors")
    b = load_file(ws / "full-fsdp/model/model.safetensors")
    assert a.keys() == b.keys()
    initial = AutoModelForCausalLM.from_pretrained(ws / "m").state_dict()
    assert max((a[k] - initial[k]).abs().max().item() for k in a) > 1e-4  # it trained
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=1e-5, msg=k)
    loaded = AutoModelForCausalLM.from_pretrained(ws / "full-fsdp/model")
    assert sorted(p.name for p in (ws / "full-fsdp/model").iterdir()) == [
        "config.json",
        "generation_config.json",
        "model.safetensors",
    ]
    assert loaded.config.model_type == "llama"
    summary = json.loads((ws / "full-fsdp/training.json").read_text())
    assert summary["world_size"] == 2 and summary["settings"]["sharding"] == "fsdp"


def test_sharding_one_process_or_a_method_that_does_not_shard_is_refused(ws):
    alone = _train(ws, "alone", 8, [sys.executable], "--method", "full", "--sharding", "fsdp")
    assert alone.returncode == 2
    assert "error: --sharding fsdp shards over the processes torchrun starts" in alone.stderr
    steering = _train(ws, "steer", 8, [sys.executable], "--sharding", "fsdp")
    assert steering.returncode == 2 and "method steering does not shard" in steering.stderr


def _evaluate(ws: Path, name: str, **kw) -> tuple[dict, list[str]]:
    """The base model on 8 BoolQ test rows: the metrics and the generated outputs."""
    (result,) = run_inference(
        InferenceSettings(
            model_name=str(ws / "m"),
            dataset_name="BoolQ",
            data_dir=str(ws / "BoolQ"),
            output_dir=str(ws / name),
            max_eval_samples=8,
            progress=False,
            **kw,
        )
    )
    return result, [json.loads(line)["output"] for line in (ws / name / "test.json").open()]


def test_device_map_auto_evaluation_matches_the_single_device_load(ws):
    plain, plain_outputs = _evaluate(ws, "plain")  # the default device: where "auto" puts it
    spread, spread_outputs = _evaluate(ws, "spread", device_map="auto")
    assert spread_outputs == plain_outputs
    assert spread["accuracy"] == plain["accuracy"]


def test_device_and_device_map_together_are_refused(ws):
    from steering.loading.loader import load_base_model

    with pytest.raises(ValueError, match="not both"):
        load_base_model(str(ws / "m"), device="cpu", device_map="auto")
    with pytest.raises(ValueError, match="choose one of"):
        load_base_model(str(ws / "m"), device_map="everywhere")


@pytest.mark.gpu
def test_device_map_auto_on_cuda_matches_the_single_gpu_load(ws):
    _, spread = _evaluate(ws, "cuda-map", device_map="auto")
    _, single = _evaluate(ws, "cuda-one", device="cuda")
    assert spread == single


@pytest.mark.gpus(2)
def test_two_gpus_under_nccl_train_what_one_gpu_does_and_fsdp_evaluates(ws):
    """The CUDA path of the two tests above: torchrun over 2 GPUs (NCCL, --device cuda: each
    process its own GPU) against one process on one GPU, for DDP steering and for FSDP full
    fine-tuning with --do-eval."""
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    two = [*torchrun, "--nproc-per-node", "2"]
    single = _train(ws, "gpu-single", 8, [sys.executable], device="cuda")
    assert single.returncode == 0, single.stderr[-3000:]
    ddp = _train(ws, "gpu-ddp", 4, two, device="cuda")
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    a = load_file(ws / "gpu-single" / "adapter.safetensors")
    b = load_file(ws / "gpu-ddp" / "adapter.safetensors")
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=1e-4, msg=k)
    full = ("--method", "full", "--lr", "0.001", "--sharding", "fsdp", "--do-eval")
    sharded = _train(ws, "gpu-fsdp", 4, two, *full, device="cuda")
    assert sharded.returncode == 0, sharded.stderr[-3000:]
    summary = json.loads((ws / "gpu-fsdp/training.json").read_text())
    assert summary["world_size"] == 2 and (ws / "gpu-fsdp/test.json").is_file()
    assert "GSM8K test: accuracy" in sharded.stdout


def test_after_fsdp_the_main_process_evaluates_the_saved_checkpoint_whole(ws):
    """On GPUs, FSDP leaves each process a shard of the weights that only all of them can
    run, and the other processes have ended: evaluation loads the checkpoint just saved."""
    from types import SimpleNamespace

    from steering.methods import get_method
    from steering.training.run import TrainSettings, _unsharded, train

    s = TrainSettings(
        model_name=str(ws / "m"),
        dataset_name="GSM8K",
        data_dir=str(ws / "GSM8K"),
        method="full",
        max_train_samples=16,
        epochs=1,
        output_dir=str(ws / "full-whole"),
        progress=False,
        device="cpu",
    )
    train(s)
    trainer = SimpleNamespace(model="shards", model_wrapped="shards")
    model = _unsharded(get_method("full"), trainer, s, torch.device("cpu"))
    assert trainer.model is None and trainer.model_wrapped is None  # the shards let go
    saved = load_file(ws / "full-whole/model/model.safetensors")
    state = model.state_dict()
    assert all(torch.equal(state[k], saved[k]) for k in saved) and not model.training
