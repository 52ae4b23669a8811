"""LoRA and full fine-tuning baselines: closed-form parameter counts, checkpoints, scripts."""

import json
import runpy
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from steering.architectures import get_architecture
from steering.loading.tiny import save_tiny_model, tiny_model
from steering.methods import METHODS, get_method
from steering.tasks import get_task
from steering.tasks.files import write_prepared

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("model_type", ["llama", "gpt2", "phi3", "gpt_neox", "opt"])
def test_lora_trainable_count_is_closed_form(model_type):
    base = tiny_model(model_type, num_layers=2)
    targets = get_architecture(base).lora_targets
    expected = 0
    for name, module in base.named_modules():
        if name.split(".")[-1] in targets:
            d_in, d_out = (
                (module.in_features, module.out_features)
                if isinstance(module, nn.Linear)
                else module.weight.shape
            )  # GPT-2's Conv1D stores (in, out)
            expected += 4 * (d_in + d_out)
    n_base = sum(p.numel() for p in base.parameters())
    lora = METHODS["lora"]
    model = lora.build(base, lora.check_options({"rank": 4}))
    assert lora.trainable_parameters(model) == expected > 0
    assert lora.base_parameters(model) == n_base
    assert {n.split(".")[-1] for n, p in model.named_parameters() if p.requires_grad} <= {"weight"}
    assert all("lora_" in n for n, p in model.named_parameters() if p.requires_grad)


def test_full_fine_tuning_trains_everything():
    base = tiny_model("llama")
    base.requires_grad_(False)
    full = METHODS["full"]
    model = full.build(base, full.check_options({}))
    n = sum(p.numel() for p in base.parameters())
    assert full.trainable_parameters(model) == full.base_parameters(model) == n


def test_unknown_method():
    with pytest.raises(ValueError, match="unknown method 'dora'; valid names: .*'lora'"):
        get_method("dora")


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    ws = tmp_path_factory.mktemp("baselines")
    save_tiny_model(ws / "tiny", "llama", hidden_size=32, num_layers=2)
    task = get_task("ListOps")
    write_prepared(
        task, task.make_splits(task.synthetic(scale=0.05)), ws / "data", {"kind": "synthetic"}
    )
    return ws


def run_script(name, args, monkeypatch, cwd):
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", [name, *map(str, args), "--no-progress"])
    with pytest.raises(SystemExit) as e:
        runpy.run_path(str(ROOT / "scripts" / name), run_name="__main__")
    return e.value.code


@pytest.mark.parametrize(
    "method, saved",
    [
        ("lora", "lora/adapter_config.json"),
        ("full", "model/config.json"),
        ("reft", "reft.safetensors"),
    ],
)
def test_baseline_trains_saves_and_evaluates_through_the_scripts(ws, monkeypatch, method, saved):
    out = ws / method
    common = [
        "--model-name",
        ws / "tiny",
        "--dataset-name",
        "ListOps",
        "--data-dir",
        ws / "data",
        "--max-eval-samples",
        "6",
    ]
    code = run_script(
        "train.py",
        [
            *common,
            "--method",
            method,
            "--max-train-samples",
            "32",
            "--lr",
            "1e-3",
            "--do-eval",
            "--test-only",
            "--output-dir",
            out,
        ],
        monkeypatch,
        ws,
    )
    assert code == 0
    assert (out / saved).is_file() and json.loads((out / "method.json").read_text())[
        "method"
    ] == method
    training = json.loads((out / "training.json").read_text())
    variants = {"lora": "lora_r8", "full": "full", "reft": "reft_r8_f0_l1"}
    assert training["method"] == method and training["variant"] == variants[method]
    in_process = (out / "test.json").read_text()
    code = run_script(
        "inference.py",
        [*common, "--ckpt-path", out, "--output-file", ws / f"{method}.json"],
        monkeypatch,
        ws,
    )
    assert code == 0
    assert (ws / f"{method}.json").read_text() == in_process  # the checkpoint evaluates the same
    if method == "full":  # the saved model really is the trained one, not the base
        from safetensors.torch import load_file

        before = load_file(ws / "tiny" / "model.safetensors")
        after = load_file(out / "model" / "model.safetensors")
        assert any(not torch.equal(before[k], after[k]) for k in before if k in after)
