"""Methods as plug-ins (steering/methods/): the registry, checkpoints written before it, and a
method defined only in this file, registered through STEERING_METHODS and run through
scripts/train.py, scripts/inference.py and a Snakemake job with no other file touched.

This module is also that plug-in: STEERING_METHODS below lists its method, and the scripts
and Snakemake load this file by its path. So it imports only what any process has at the top
(the package and its dependencies); test helpers are imported inside the tests.
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from steering.methods import METHODS, for_checkpoint, get_method, register, unregister
from steering.methods.base import Method, Setting

HERE = Path(__file__).resolve()
FIXTURES = HERE.parent / "data" / "checkpoints"


class LayerScale(Method):
    """A learned scale per decoder layer on the block output: h' = s_l h, s_l from
    ``scale_init``. Only ``build`` and its setting: the checkpoint and its loading are the
    interface's defaults."""

    name = "layer_scale"
    summary = "a learned scale per layer on the block output (a test plug-in)"
    settings = (Setting("scale_init", {"type": "number"}, 1.0, "the scales' initial value"),)

    def build(self, base, options: dict[str, Any], steering=None, precision: str = "fp32"):
        from torch import nn

        from steering.architectures import decoder_layers

        base.requires_grad_(False)
        layers = decoder_layers(base)
        base.layer_scales = nn.Parameter(torch.full((len(layers),), float(options["scale_init"])))

        def scaled(i):
            def hook(module, args, output):
                if isinstance(output, tuple):
                    return (output[0] * base.layer_scales[i], *output[1:])
                return output * base.layer_scales[i]

            return hook

        for i, layer in enumerate(layers):
            layer.register_forward_hook(scaled(i))
        return base


STEERING_METHODS = [LayerScale]  # what STEERING_METHODS=<this file> registers


@pytest.fixture
def layer_scale():
    method = register(LayerScale)
    yield method
    unregister(LayerScale.name)


# --- the registry ---------------------------------------------------------------------------


def test_the_registry_holds_every_method_once():
    assert list(METHODS) == ["steering", "joint", "lora", "full", "reft", "base"]
    assert all(m.name == name for name, m in METHODS.items())
    assert [n for n, m in METHODS.items() if not m.trains] == ["base"]
    assert METHODS["joint"].script == "scripts/train_joint.py"
    with pytest.raises(ValueError, match=r"unknown method 'dora'; valid names: \['steering'"):
        get_method("dora")


def test_a_method_with_a_taken_name_or_a_clashing_setting_is_refused():
    class Again(LayerScale):
        name = "lora"

    with pytest.raises(ValueError, match="a method named 'lora' is registered already"):
        register(Again)

    class Clash(LayerScale):
        name = "clash"
        settings = (Setting("rank", {"type": "string"}),)

    with pytest.raises(ValueError, match="setting 'rank' has schema"):
        register(Clash)
    assert "clash" not in METHODS
    with pytest.raises(ValueError, match="is a built-in method"):
        unregister("lora")


def test_a_registered_method_is_known_to_the_config_and_the_scripts(layer_scale):
    from steering.pipeline import config_schema, grid_config, jobs
    from tests.workflow import ROOT

    schema = config_schema.load(ROOT / "config/schema.yaml")
    variant = schema["properties"]["variants"]["additionalProperties"]["properties"]
    assert "layer_scale" in variant["method"]["enum"] and "scale_init" in variant
    config = {
        "models": {"m": {"tiny": {}}},
        "datasets": {"BoolQ": {"source": "synthetic"}},
        "variants": {"s": {"method": "layer_scale", "scale_init": 0.5, "lr": 0.01}},
        "seeds": [0],
    }
    assert config_schema.errors(config, schema) == []
    config_schema.fill_defaults(config, schema)
    assert grid_config.problems(config, schema=schema) == []
    args = jobs.train_args(config, "m", "BoolQ", "s", 0).split()
    assert args[-4:] == ["--method", "layer_scale", "--scale-init", "0.5"]
    bad = {**config, "variants": {"s": {"method": "lora", "scale_init": 0.5}}}
    found = grid_config.problems(bad, schema=schema)
    assert "'scale_init' is only read by method(s) layer_scale" in "\n".join(found)


# --- checkpoints written before the registry ------------------------------------------------


@pytest.mark.parametrize(
    "name", ["steering", "vector", "submodules", "lora", "full", "reft", "joint"]
)
def test_checkpoints_from_before_the_registry_load_to_the_same_outputs(name):
    from steering.evaluation.inference import InferenceSettings

    expected = json.loads((FIXTURES / "expected.json").read_text())
    settings = InferenceSettings(
        model_name=str(FIXTURES / "base"), dataset_name="BoolQ", ckpt_path=str(FIXTURES / name)
    )
    method = for_checkpoint(FIXTURES / name)
    assert method.name == ("steering" if name in ("vector", "submodules") else name)
    model, base = method.load(FIXTURES / name, settings)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([expected["input_ids"]])).logits[0, :, :6]
    torch.testing.assert_close(logits, torch.tensor(expected[name]), rtol=0, atol=1e-5)
    assert base.config.model_type == "llama"


# --- a method of one's own, end to end ------------------------------------------------------


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    from steering.loading.tiny import save_tiny_model
    from steering.tasks import get_task
    from steering.tasks.files import write_prepared

    ws = tmp_path_factory.mktemp("plugin")
    save_tiny_model(ws / "tiny", "llama", hidden_size=32, num_layers=2)
    task = get_task("BoolQ")
    write_prepared(
        task, task.make_splits(task.synthetic(scale=0.03)), ws / "data", {"kind": "synthetic"}
    )
    return ws


def plugin_env() -> dict[str, str]:
    from tests.workflow import env

    return env(STEERING_METHODS=str(HERE))


def script(name: str, *args, cwd: Path) -> subprocess.CompletedProcess:
    from tests.workflow import ROOT

    command = [sys.executable, str(ROOT / "scripts" / name), *map(str, args), "--no-progress"]
    return subprocess.run(command, cwd=cwd, env=plugin_env(), capture_output=True, text=True)


def test_a_plugin_method_trains_saves_and_evaluates_through_the_scripts(ws):
    from safetensors.torch import load_file

    common = ["--model-name", ws / "tiny", "--dataset-name", "BoolQ", "--data-dir", ws / "data"]
    trained = script(
        "train.py", *common, "--method", "layer_scale", "--scale-init", "0.5", "--lr", "0.05",
        "--max-train-samples", "32", "--output-dir", ws / "ckpt", cwd=ws,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-3000:]
    info = json.loads((ws / "ckpt/method.json").read_text())
    assert info["method"] == "layer_scale" and info["options"] == {"scale_init": 0.5}
    scales = load_file(ws / "ckpt/method.safetensors")["layer_scales"]
    assert scales.shape == (2,) and not torch.equal(scales, torch.full((2,), 0.5))  # it trained
    summary = json.loads((ws / "ckpt/training.json").read_text())
    assert summary["method"] == "layer_scale" and summary["trainable_parameters"] == 2
    evaluated = script(
        "inference.py", *common, "--ckpt-path", ws / "ckpt", "--split", "test",
        "--max-eval-samples", "3", cwd=ws,
    )  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    metrics = json.loads((ws / "ckpt/test.metrics.json").read_text())
    assert (
        metrics["n"] == 3 and metrics["provenance"]["config"]["method"]["method"] == "layer_scale"
    )
    # the evaluated model is the trained one: rebuilt and loaded in this process, the same scales
    from steering.evaluation.inference import InferenceSettings

    method = register(LayerScale)
    try:
        settings = InferenceSettings(str(ws / "tiny"), "BoolQ", ckpt_path=str(ws / "ckpt"))
        model, _ = method.load(ws / "ckpt", settings)
        torch.testing.assert_close(model.layer_scales.detach(), scales, rtol=0, atol=0)
    finally:
        unregister(LayerScale.name)


@pytest.mark.slow
def test_a_plugin_method_runs_as_a_snakemake_job(tmp_path):
    import yaml

    from tests.workflow import copy_workflow, job_counts

    work = copy_workflow(tmp_path)
    config = {
        "models": {"tiny": {"tiny": {"hidden_size": 32, "layers": 2}}},
        "datasets": {"BoolQ": {"source": "synthetic", "synthetic_scale": 0.03}},
        "variants": {"scaled": {"method": "layer_scale", "scale_init": 0.8}},
        "seeds": [0],
        "training": {"lr": 0.05, "max_train_samples": 32, "max_eval_samples": 8, "save_steps": 0},
    }
    (work / "plugin.yaml").write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "snakemake", "--configfile", "plugin.yaml", "--cores", "2"]
    done = subprocess.run(command, cwd=work, env=plugin_env(), capture_output=True, text=True)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert job_counts(done.stdout + done.stderr)["train"] == 1
    run = work / "results/runs/tiny/BoolQ/scaled/seed0"
    assert json.loads((run / "checkpoint/method.json").read_text())["method"] == "layer_scale"
    assert json.loads((run / "test.metrics.json").read_text())["n"] == 3
    log = (work / "results/logs/train/tiny/BoolQ/scaled/seed0.log").read_text()
    assert "trainable params: 2 " in log
    assert os.environ.get("STEERING_METHODS") is None  # this process never had the plug-in
