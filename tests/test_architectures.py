"""The architecture registry: every family the issue names, site resolution, clear failures."""

import pytest
import torch

from steering import SteeredModel, SteeringConfig
from steering.architectures import ARCHITECTURES, decoder_layers, site_module
from steering.loading.tiny import TINY_MODELS, tiny_model
from tests.conftest import randomize

REQUIRED = {
    "llama",
    "mistral",
    "qwen2",
    "qwen3",
    "gemma",
    "gemma2",
    "gemma3_text",
    "gemma3",
    "phi3",
    "gpt2",
    "gpt_neox",
    "opt",
}


def test_registry_covers_the_supported_families_and_each_has_a_tiny_model():
    assert REQUIRED <= set(ARCHITECTURES)
    assert set(ARCHITECTURES) == set(TINY_MODELS)


@pytest.mark.parametrize("model_type", sorted(TINY_MODELS))
def test_every_site_resolves_to_a_distinct_submodule(model_type):
    model = tiny_model(model_type, num_layers=3)
    layers = decoder_layers(model)
    assert len(layers) == 3
    attn, mlp = (site_module(model, layers[1], s) for s in ("attn", "mlp"))
    assert attn is not mlp and attn is not layers[1]
    assert any(attn is m for m in layers[1].modules()) and any(
        mlp is m for m in layers[1].modules()
    )
    assert site_module(model, layers[1], "block") is layers[1]
    site_module(model, layers[1], "official_attn")


def test_gemma3_multimodal_steers_its_language_model():
    model = tiny_model("gemma3", num_layers=2)
    assert decoder_layers(model) is model.model.language_model.layers
    steered = SteeredModel(model)
    assert steered.hidden_size == model.config.text_config.hidden_size
    assert not any(p.requires_grad for p in model.model.vision_tower.parameters())


def test_gemma2_branch_sites_are_the_post_branch_norms():
    """Gemma-2/3 add norm(branch) to the residual: that norm's output is the branch output."""
    model = tiny_model("gemma2")
    layer = decoder_layers(model)[0]
    assert site_module(model, layer, "attn") is layer.post_attention_layernorm
    assert site_module(model, layer, "mlp") is layer.post_feedforward_layernorm
    llama = tiny_model("llama")
    layer = decoder_layers(llama)[0]
    assert site_module(llama, layer, "official_attn") is layer.post_attention_layernorm
    assert site_module(llama, layer, "attn") is layer.self_attn


def test_hook_keeps_the_structure_of_tuple_and_tensor_outputs():
    """transformers 4.x decoder layers return (hidden, ...); 5.x return the tensor itself."""
    steered = SteeredModel(tiny_model("llama"))
    randomize(steered)
    adapter = steered.adapters["layer0_block"]
    hook = steered._hook(adapter)
    h, extra = torch.randn(2, 3, 64), object()
    out = hook(None, (), (h, extra))
    assert isinstance(out, tuple) and len(out) == 2 and out[1] is extra
    torch.testing.assert_close(out[0], h + adapter(h))
    torch.testing.assert_close(hook(None, (), h), h + adapter(h))
    with steered.disabled():
        assert hook(None, (), h) is None  # None leaves the module's output as it was


def test_a_missing_site_path_names_the_available_sites(monkeypatch):
    from steering import architectures

    broken = architectures.Architecture(layers=("model.layers",), sites={"attn": "nope"})
    monkeypatch.setitem(architectures.ARCHITECTURES, "llama", broken)
    with pytest.raises(
        ValueError, match=r"has no submodule 'nope'; available sites: \['block', 'attn'\]"
    ):
        SteeredModel(tiny_model("llama"), SteeringConfig(sites=("attn",)))
