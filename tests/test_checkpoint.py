"""Our checkpoint format (save -> load, every strict-load error) and the official importer."""

import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from steering import SteeredModel, SteeringConfig, __version__
from steering.architectures import decoder_layers
from steering.checkpoint import CONFIG_NAME, WEIGHTS_NAME
from steering.loading.tiny import tiny_model
from tests.conftest import official_state, randomize


def logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


@pytest.fixture
def saved(tmp_path):
    steered = SteeredModel(tiny_model("llama", num_layers=3), SteeringConfig(sites=("attn", "mlp")))
    randomize(steered)
    steered.save_pretrained(tmp_path / "ckpt")
    return steered, tmp_path / "ckpt"


@pytest.mark.parametrize(
    "model_type, config",
    [
        ("llama", SteeringConfig()),
        ("gemma3", SteeringConfig(kind="vector", layers=(1,))),
        (
            "gpt2",
            SteeringConfig(activation=None, rank=2, alpha=0.5, sites=("official_attn", "mlp")),
        ),
    ],
)
def test_round_trip_gives_identical_logits(tmp_path, input_ids, model_type, config):
    steered = SteeredModel(tiny_model(model_type), config)
    randomize(steered)
    expected = logits(steered, input_ids)
    steered.save_pretrained(tmp_path / "ckpt")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [WEIGHTS_NAME, CONFIG_NAME]
    again = SteeredModel.from_pretrained(tiny_model(model_type), tmp_path / "ckpt")
    assert again.steering_config == config
    assert torch.equal(logits(again, input_ids), expected)


def test_checkpoint_records_config_and_base(saved):
    steered, path = saved
    meta = json.loads((path / CONFIG_NAME).read_text())
    assert meta["format_version"] == 1 and meta["package_version"] == __version__
    assert meta["steering"] == steered.steering_config.to_dict()
    assert meta["base_model"] == {
        "name_or_path": "tiny-llama",
        "revision": None,
        "model_type": "llama",
        "hidden_size": 64,
        "num_layers": 3,
        "dtype": "float32",
    }
    assert "git_commit" in meta
    tensors = load_file(path / WEIGHTS_NAME)
    assert set(tensors) == {
        f"layer{i}_{s}.{p}.weight"
        for i in range(3)
        for s in ("attn", "mlp")
        for p in ("down", "up")
    }  # adapter tensors only


def _rewrite(path, edit):
    tensors = load_file(path / WEIGHTS_NAME)
    edit(tensors)
    save_file(tensors, path / WEIGHTS_NAME)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda t: t.pop("layer1_mlp.up.weight"), r"missing tensors \['layer1_mlp.up.weight'\]"),
        (lambda t: t.update(extra=torch.zeros(2)), r"unexpected tensors \['extra'\]"),
        (
            lambda t: t.update({"layer0_attn.down.weight": torch.zeros(4, 64)}),
            r"layer0_attn.down.weight: checkpoint \(4, 64\) vs model \(8, 64\)",
        ),
    ],
)
def test_strict_load_rejects_wrong_tensors(saved, edit, message):
    _, path = saved
    _rewrite(path, edit)
    with pytest.raises(ValueError, match=message):
        SteeredModel.from_pretrained(tiny_model("llama", num_layers=3), path)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"hidden_size": 32, "num_layers": 3}, "hidden_size: checkpoint 64 vs base model 32"),
        ({"num_layers": 2}, "num_layers: checkpoint 3 vs base model 2"),
    ],
)
def test_strict_load_rejects_a_different_base(saved, kwargs, message):
    _, path = saved
    base = tiny_model("llama", **kwargs)
    with pytest.raises(ValueError, match=message):
        SteeredModel.from_pretrained(base, path)
    assert not any(m._forward_hooks for m in base.modules())


def test_newer_format_version_is_refused(saved):
    _, path = saved
    meta = json.loads((path / CONFIG_NAME).read_text())
    meta["format_version"] = 99
    (path / CONFIG_NAME).write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="format_version 99.*upgrade"):
        SteeredModel.from_pretrained(tiny_model("llama", num_layers=3), path)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda p: (p / WEIGHTS_NAME).unlink(), r"not a steering checkpoint: missing \['adapter"),
        (lambda p: (p / CONFIG_NAME).unlink(), r"missing \['steering_config.json'\]"),
        (
            lambda p: (p / WEIGHTS_NAME).write_bytes((p / WEIGHTS_NAME).read_bytes()[:100]),
            "not a readable safetensors file",
        ),
        (lambda p: (p / CONFIG_NAME).write_text("{ nope"), "not valid JSON"),
        (lambda p: (p / CONFIG_NAME).write_text("{}"), "lacks 'format_version'"),
        (
            lambda p: (p / CONFIG_NAME).write_text(
                json.dumps({"format_version": 1, "steering": {"rank": -1}, "base_model": {}})
            ),
            r"invalid steering config: SteeringConfig.rank=-1",
        ),
    ],
)
def test_damaged_checkpoints_fail_clearly(saved, damage, message):
    _, path = saved
    damage(path)
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        SteeredModel.from_pretrained(tiny_model("llama", num_layers=3), path)


def test_save_leaves_no_temp_files_and_overwrites(saved):
    steered, path = saved
    randomize(steered, seed=5)
    steered.save_pretrained(path)
    assert sorted(p.name for p in path.iterdir()) == [WEIGHTS_NAME, CONFIG_NAME]
    torch.testing.assert_close(
        load_file(path / WEIGHTS_NAME)["layer0_attn.up.weight"],
        steered.adapters["layer0_attn"].up.weight,
    )


def test_state_dict_holds_adapters_only(saved):
    steered, _ = saved
    sd = steered.state_dict()
    assert sd and all(k.startswith("adapters.") for k in sd)
    fresh = SteeredModel(tiny_model("llama", num_layers=3), SteeringConfig(sites=("attn", "mlp")))
    result = fresh.load_state_dict(sd)
    assert not result.missing_keys and not result.unexpected_keys
    with pytest.raises(RuntimeError, match="unexpected non-adapter keys"):
        fresh.load_state_dict({**sd, "base_model.lm_head.weight": torch.zeros(1)})
    lenient = fresh.load_state_dict({"base_model.x": torch.zeros(1)}, strict=False)
    assert "base_model.x" in lenient.unexpected_keys and lenient.missing_keys


# --- official checkpoints ---------------------------------------------------------------------
def _apply_by_hand(base, state, act):
    """Forward hooks written independently of the package, on the official hook points."""
    official_modules = {
        "block": lambda layer: layer,
        "attn": lambda layer: layer.post_attention_layernorm,
        "mlp": lambda layer: layer.mlp,
    }
    handles = []
    for i, layer in enumerate(decoder_layers(base)):
        for site, where in official_modules.items():
            if f"adapters.layer{i}_{site}.down.weight" in state:
                down = state[f"adapters.layer{i}_{site}.down.weight"]
                up = state[f"adapters.layer{i}_{site}.up.weight"]
                delta = lambda h, d=down, u=up: F.linear(act(F.linear(h, d)), u)  # noqa: E731
            elif f"deltas.layer{i}_{site}" in state:
                delta = lambda h, v=state[f"deltas.layer{i}_{site}"]: v  # noqa: E731
            else:
                continue
            handles.append(
                where(layer).register_forward_hook(lambda m, a, out, f=delta: out + f(out))
            )
    return handles


@pytest.mark.parametrize(
    "sites, kind, activation, act",
    [
        (("block",), "adapter", "silu", F.silu),
        (("block",), "adapter", None, lambda x: x),
        (("attn", "mlp"), "adapter", "silu", F.silu),
        (("block",), "vector", "silu", None),
    ],
)
@pytest.mark.parametrize("fmt", ["bin", "safetensors"])
def test_official_checkpoint_reproduces_official_logits(
    tmp_path, input_ids, sites, kind, activation, act, fmt
):
    base = tiny_model("llama", num_layers=3)
    state = official_state(base, sites, kind, rank=4)
    if fmt == "bin":
        file = tmp_path / "pytorch_model.bin"
        torch.save(state, file)
    else:
        file = tmp_path / "model.safetensors"
        save_file({k: v.contiguous() for k, v in state.items()}, file)
    handles = _apply_by_hand(base, state, act)
    expected = logits(base, input_ids)
    for h in handles:
        h.remove()
    steered = SteeredModel.from_official_checkpoint(base, tmp_path, activation=activation)
    c = steered.steering_config
    assert (c.kind, c.layers, c.activation) == (kind, "all", activation)
    assert c.sites == tuple(
        sorted({"block": "block", "attn": "official_attn", "mlp": "mlp"}[s] for s in sites)
    )
    if kind == "adapter":
        assert c.rank == 4
    torch.testing.assert_close(logits(steered, input_ids), expected, rtol=0, atol=0)


def test_official_checkpoint_with_some_layers(tmp_path):
    base = tiny_model("llama", num_layers=3)
    state = official_state(base, ("block",))
    state = {k: v for k, v in state.items() if "layer1_" not in k}
    torch.save(state, tmp_path / "pytorch_model.bin")
    steered = SteeredModel.from_official_checkpoint(base, tmp_path / "pytorch_model.bin")
    assert steered.steering_config.layers == (0, 2)


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda s: {k: v for k, v in s.items() if k.startswith("model.")},
            "holds no steering tensors",
        ),
        (
            lambda s: {**s, "adapters.layer0_ffn.down.weight": torch.zeros(8, 64)},
            "unknown site 'ffn'",
        ),
        (
            lambda s: {**s, "adapters.layer0_block.scale": torch.zeros(1)},
            "unrecognised steering key",
        ),
        (
            lambda s: {**s, "deltas.layer0_block": torch.zeros(64)},
            "mixes adapters and steering vectors",
        ),
    ],
)
def test_bad_official_checkpoints_fail_clearly(tmp_path, edit, message):
    base = tiny_model("llama", num_layers=3)
    torch.save(edit(official_state(base, ("block",))), tmp_path / "pytorch_model.bin")
    with pytest.raises(ValueError, match=message):
        SteeredModel.from_official_checkpoint(base, tmp_path / "pytorch_model.bin")


def test_official_checkpoint_for_another_model_size(tmp_path):
    state = official_state(tiny_model("llama", hidden_size=32, num_layers=3), ("block",))
    torch.save(state, tmp_path / "pytorch_model.bin")
    with pytest.raises(ValueError, match="hidden size 32; this base model has hidden size 64"):
        SteeredModel.from_official_checkpoint(tiny_model("llama", num_layers=3), tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        SteeredModel.from_official_checkpoint(tiny_model("llama"), tmp_path / "nope.bin")


def test_official_loader_runs_no_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"adapters.layer0_block.down.weight": Evil()}, tmp_path / "pytorch_model.bin")
    with pytest.raises(Exception, match="Weights only load failed|weights_only"):
        SteeredModel.from_official_checkpoint(tiny_model("llama"), tmp_path / "pytorch_model.bin")
