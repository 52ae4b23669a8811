"""SteeringConfig: defaults, validation errors naming field/value/allowed, JSON round trip."""

import json

import pytest

from steering import SteeringConfig
from steering import adapters as adapters_module
from steering import config as config_module


def test_default_is_the_papers_setting():
    c = SteeringConfig()
    assert (c.kind, c.rank, c.activation, c.alpha) == ("adapter", 8, "silu", 1.0)
    assert (c.sites, c.layers, c.positions) == (("block",), "all", "all")


@pytest.mark.parametrize(
    "kwargs, field, hint",
    [
        ({"kind": "lora"}, "kind", "adapter"),
        ({"rank": 0}, "rank", ">= 1"),
        ({"rank": 2.0}, "rank", "integer"),
        ({"rank": True}, "rank", "integer"),
        ({"activation": "swish"}, "activation", "silu"),
        ({"activation": "linear"}, "activation", "None"),
        ({"alpha": float("nan")}, "alpha", "finite"),
        ({"alpha": "1"}, "alpha", "number"),
        ({"sites": ()}, "sites", "non-empty"),
        ({"sites": ("block", "ffn")}, "sites", "official_attn"),
        ({"sites": ("mlp", "mlp")}, "sites", "repeat"),
        ({"layers": "first"}, "layers", "'all'"),
        ({"layers": []}, "layers", "non-empty"),
        ({"layers": (0, -1)}, "layers", ">= 0"),
        ({"layers": (1, 1)}, "layers", "repeat"),
        ({"positions": "prompt"}, "positions", "'all', 'last'"),
    ],
)
def test_invalid_values_name_field_value_and_allowed(kwargs, field, hint):
    with pytest.raises(ValueError) as e:
        SteeringConfig(**kwargs)
    msg = str(e.value)
    assert f"SteeringConfig.{field}=" in msg
    assert repr(next(iter(kwargs.values())))[:20] in msg
    assert hint in msg


def test_last_token_positions_are_accepted_and_named():
    c = SteeringConfig(positions="last")
    assert c.positions == "last" and c.variant_name() == "adapter_last_nonlinear_silu"
    assert SteeringConfig(positions="last", kind="vector").variant_name() == "fixedvec_last"


def test_sites_and_layers_are_canonicalised():
    c = SteeringConfig(sites=["mlp", "attn"], layers=[3, 1])
    assert c.sites == ("attn", "mlp") and c.layers == (1, 3)
    assert SteeringConfig(sites="block").sites == ("block",)


@pytest.mark.parametrize(
    "config",
    [
        SteeringConfig(),
        SteeringConfig(kind="vector", alpha=0.5, layers=(0, 2)),
        SteeringConfig(activation=None, rank=1, sites=("official_attn", "mlp")),
    ],
)
def test_json_round_trip(config):
    text = config.to_json()
    assert json.loads(text)["sites"] == list(config.sites)
    assert SteeringConfig.from_json(text) == config


def test_from_dict_rejects_unknown_fields():
    with pytest.raises(ValueError, match=r"unknown SteeringConfig field\(s\) \['rnak'\]"):
        SteeringConfig.from_dict({"rnak": 4})


def test_layer_indices_checks_the_model_depth():
    assert SteeringConfig().layer_indices(3) == (0, 1, 2)
    with pytest.raises(ValueError, match=r"layer\(s\) \[5\].*has 4 decoder layers"):
        SteeringConfig(layers=(1, 5)).layer_indices(4)


def test_config_and_adapter_registries_agree():
    assert set(config_module.ACTIVATIONS) == set(adapters_module.ACTIVATIONS)
