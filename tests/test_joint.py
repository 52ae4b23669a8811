"""Joint adaptation: orthogonality projection, its frequencies, the two learning rates,
checkpoints (PEFT LoRA + our adapter), and train_joint.py end to end."""

import json
import runpy
import sys
from pathlib import Path

import pytest
import torch

from steering import SteeringConfig
from steering.architectures import decoder_layers
from steering.loading.tiny import save_tiny_model, tiny_model
from steering.methods import METHODS
from steering.methods.joint import parse_frequency
from steering.methods.joint.model import JointModel, OrthogonalityCallback
from steering.tasks import get_task
from steering.tasks.files import write_prepared
from steering.training.run import TrainSettings
from tests.conftest import randomize

ROOT = Path(__file__).resolve().parent.parent


def joint(seed=0, **kw):
    model = JointModel(
        tiny_model("llama", num_layers=2, seed=seed), SteeringConfig(**kw), lora_rank=4
    )
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.lora_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    randomize(model.steered, scale=0.3, seed=seed)
    return model


def basis(model, layer):
    b = decoder_layers(model.lora.get_base_model())[layer].mlp.down_proj.lora_B["default"].weight
    u, s, _ = torch.linalg.svd(b, full_matrices=False)
    return u[:, s > 1e-6 * s.max()]


@pytest.mark.parametrize("side", ["input", "output"])
def test_projection_removes_the_lora_directions(side):
    model = joint()
    before = {k: v.clone() for k, v in model.steered.state_dict().items()}
    assert model.project(side) == 2
    for i in range(2):
        v = basis(model, i)
        adapter = model.steered.adapters[f"layer{i}_block"]
        if side == "input":
            assert (adapter.down.weight @ v).abs().max() < 1e-5  # W_down V = 0
            assert torch.equal(adapter.up.weight, before[f"adapters.layer{i}_block.up.weight"])
        else:
            assert (v.T @ adapter.up.weight).abs().max() < 1e-5
    assert model.project(side) == 2  # idempotent: projecting again changes (almost) nothing
    after = model.steered.state_dict()
    model.project(side)
    for k, val in model.steered.state_dict().items():
        torch.testing.assert_close(val, after[k], rtol=0, atol=1e-6)


def test_zero_lora_b_leaves_the_adapter_alone():
    model = JointModel(tiny_model("llama"), SteeringConfig(), lora_rank=4)  # PEFT inits B = 0
    randomize(model.steered)
    before = {k: v.clone() for k, v in model.steered.state_dict().items()}
    assert model.project() == 0
    assert all(torch.equal(v, before[k]) for k, v in model.steered.state_dict().items())


def test_trainable_parameters_are_lora_plus_adapters_in_closed_form():
    model = JointModel(tiny_model("llama", num_layers=2), SteeringConfig(), lora_rank=4)
    h, inter, kv = 64, 128, 32  # tiny Llama: 4 heads of 16, 2 KV heads
    lora = 4 * ((h + h) + (h + kv) * 2 + (h + h) + (h + inter) * 2 + (inter + h)) * 2
    adapters = 2 * 8 * h * 2
    assert sum(p.numel() for p in model.lora_parameters()) == lora
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == lora + adapters


def test_two_learning_rates_reach_the_right_parameters():
    model = JointModel(tiny_model("llama"), SteeringConfig(), lora_rank=4)
    s = TrainSettings(
        model_name="x",
        dataset_name="BoolQ",
        method="joint",
        lr=1e-4,
        options={"lora_lr": 3e-4, "adapter_lr": 5e-3},
    )
    optimizer = METHODS["joint"].trainer_extras(model, s)["optimizers"][0]
    groups = {g["name"]: g for g in optimizer.param_groups}
    assert groups["lora"]["lr"] == 3e-4 and groups["adapters"]["lr"] == 5e-3
    assert {id(p) for p in groups["lora"]["params"]} == {id(p) for p in model.lora_parameters()}
    assert {id(p) for p in groups["adapters"]["params"]} == {
        id(p) for p in model.steered.adapters.parameters()
    }


@pytest.mark.parametrize(
    "frequency, expected", [("step", [1, 2, 3, 4]), ("2", [2, 4]), ("init", [0]), ("epoch", [2, 4])]
)
def test_frequencies_fire_on_the_right_steps(frequency, expected, tmp_path):
    from transformers import Trainer, TrainingArguments

    from steering.data import Collator

    model = JointModel(tiny_model("llama"), SteeringConfig(), lora_rank=4)
    rows = [
        {"input_ids": list(range(5, 13)), "attention_mask": [1] * 8, "labels": list(range(5, 13))}
    ] * 8
    callback = OrthogonalityCallback(model, parse_frequency(frequency))
    args = TrainingArguments(
        output_dir=str(tmp_path),
        num_train_epochs=2,
        per_device_train_batch_size=4,
        report_to="none",
        use_cpu=True,
        save_strategy="no",
        disable_tqdm=True,
        remove_unused_columns=False,
    )
    Trainer(
        model=model, args=args, train_dataset=rows, data_collator=Collator(0), callbacks=[callback]
    ).train()
    assert callback.applied_at == expected


@pytest.mark.parametrize("value", ["0", "sometimes", -3])
def test_bad_frequencies(value):
    with pytest.raises(ValueError, match="orthogonal-freq"):
        parse_frequency(value)


def test_joint_checkpoint_round_trip(tmp_path, input_ids):
    model = joint(seed=1)
    with torch.no_grad():
        expected = model(input_ids=input_ids).logits
    settings = TrainSettings(
        model_name="x", dataset_name="BoolQ", method="joint", options={"lora_rank": 4}
    )
    METHODS["joint"].save(model, tmp_path, settings)
    assert (tmp_path / "lora" / "adapter_config.json").is_file()
    loaded = METHODS["joint"].load_on(tiny_model("llama", num_layers=2, seed=1), tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=input_ids).logits, expected, rtol=0, atol=1e-6)


def test_train_joint_script_end_to_end(tmp_path, monkeypatch):
    save_tiny_model(tmp_path / "tiny", "llama", hidden_size=32, num_layers=2)
    task = get_task("BoolQ")
    write_prepared(
        task, task.make_splits(task.synthetic(scale=0.02)), tmp_path / "data", {"kind": "synthetic"}
    )
    common = [
        "--model-name",
        tmp_path / "tiny",
        "--dataset-name",
        "BoolQ",
        "--data-dir",
        tmp_path / "data",
        "--max-eval-samples",
        "4",
        "--no-progress",
    ]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "train_joint.py",
            *map(str, common),
            "--max-train-samples",
            "32",
            "--lora-lr",
            "1e-3",
            "--adapter-lr",
            "1e-2",
            "--orthogonal-freq",
            "1",
            "--test-only",
            "--output-dir",
            str(tmp_path / "out"),
        ],
    )
    with pytest.raises(SystemExit) as e:
        runpy.run_path(str(ROOT / "scripts/train_joint.py"), run_name="__main__")
    assert e.value.code == 0
    out = tmp_path / "out"
    assert json.loads((out / "method.json").read_text())["method"] == "joint"
    assert (out / "lora" / "adapter_model.safetensors").is_file() and (
        out / "adapter.safetensors"
    ).is_file()
    training = json.loads((out / "training.json").read_text())
    assert training["variant"] == "joint_lora8_adapter_all_nonlinear_silu"
    assert (
        training["settings"]["scheduler"] == "cosine"
        and training["settings"]["warmup_ratio"] == 0.06
    )
    in_process = (out / "test.json").read_text()
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "inference.py",
            *map(str, common),
            "--ckpt-path",
            str(out),
            "--output-file",
            str(tmp_path / "again.json"),
        ],
    )
    with pytest.raises(SystemExit) as e:
        runpy.run_path(str(ROOT / "scripts/inference.py"), run_name="__main__")
    assert e.value.code == 0
    assert (tmp_path / "again.json").read_text() == in_process


@pytest.mark.parametrize("model_type", ["gpt2", "gpt_neox", "opt", "phi3"])
def test_projection_uses_each_familys_mlp_output(model_type):
    model = JointModel(tiny_model(model_type, num_layers=2), SteeringConfig(), lora_rank=4)
    with torch.no_grad():
        for p in model.lora_parameters():
            p.normal_(0, 0.1)
    randomize(model.steered)
    assert model.project() == 2  # every layer's adapter projected, none skipped
    layer = decoder_layers(model.lora.get_base_model())[0]
    b = model._mlp_out(layer).lora_B["default"].weight
    u, s, _ = torch.linalg.svd(b, full_matrices=False)
    v = u[:, s > 1e-6 * s.max()]
    assert (model.steered.adapters["layer0_block"].down.weight @ v).abs().max() < 1e-5
