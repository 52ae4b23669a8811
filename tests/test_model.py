"""SteeredModel on tiny random models of every supported architecture."""

import pytest
import torch
import torch.nn.functional as F

from steering import SteeredModel, SteeringConfig
from steering.architectures import decoder_layers, site_module
from steering.loading.tiny import TINY_MODELS, tiny_model
from tests.conftest import randomize

SITE_SETS = [("block",), ("attn", "mlp"), ("official_attn", "mlp")]
HAND_ACT = {
    "silu": F.silu,
    "relu": F.relu,
    "gelu": lambda x: 0.5 * x * (1 + torch.erf(x / 2**0.5)),
    "tanh": torch.tanh,
    None: lambda x: x,
}


def logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


@pytest.mark.parametrize("model_type", sorted(TINY_MODELS))
def test_fresh_steering_is_a_bit_exact_no_op(model_type, input_ids):
    base = tiny_model(model_type)
    expected = logits(base, input_ids)
    for sites in SITE_SETS:
        for kind in ("adapter", "vector"):
            steered = SteeredModel(base, SteeringConfig(kind=kind, sites=sites))
            assert torch.equal(logits(steered, input_ids), expected), (sites, kind)
            steered.remove()


@pytest.mark.parametrize("model_type", sorted(TINY_MODELS))
@pytest.mark.parametrize("sites", SITE_SETS)
def test_steered_state_equals_the_equation(model_type, sites, input_ids):
    """At every steered site: h' = h + alpha * W_up act(W_down h), computed by hand."""
    base = tiny_model(model_type, num_layers=3)
    layers = decoder_layers(base)
    before, after = {}, {}

    def observer(store, key):
        def hook(module, args, out):
            store[key] = (out[0] if isinstance(out, tuple) else out).detach().clone()

        return hook

    # Hooks run in registration order: ones registered before steering see h, after see h'.
    modules = {f"layer{i}_{s}": site_module(base, layers[i], s) for i in (0, 2) for s in sites}
    handles = [m.register_forward_hook(observer(before, k)) for k, m in modules.items()]
    config = SteeringConfig(sites=sites, layers=(0, 2), alpha=0.5, activation="gelu")
    steered = SteeredModel(base, config)
    randomize(steered)
    handles += [m.register_forward_hook(observer(after, k)) for k, m in modules.items()]
    logits(steered, input_ids)
    assert set(after) == set(steered.adapters) == set(modules)
    for key, h in before.items():
        a = steered.adapters[key]
        expected = h + 0.5 * F.linear(HAND_ACT["gelu"](F.linear(h, a.down.weight)), a.up.weight)
        torch.testing.assert_close(after[key], expected, rtol=1e-5, atol=1e-6)
        assert not torch.allclose(after[key], h)
    for handle in handles:
        handle.remove()


@pytest.mark.parametrize("activation", ["silu", "relu", "gelu", "tanh", None])
def test_each_activation_matches_its_formula(activation, input_ids):
    base = tiny_model("llama")
    layer = decoder_layers(base)[1]
    seen = {}
    layer.register_forward_hook(lambda m, a, out: seen.setdefault("h", out.detach().clone()))
    steered = SteeredModel(base, SteeringConfig(activation=activation, layers=(1,)))
    randomize(steered)
    layer.register_forward_hook(lambda m, a, out: seen.setdefault("h2", out.detach().clone()))
    logits(steered, input_ids)
    a = steered.adapters["layer1_block"]
    z = HAND_ACT[activation](seen["h"] @ a.down.weight.T)
    torch.testing.assert_close(seen["h2"], seen["h"] + z @ a.up.weight.T, rtol=1e-5, atol=1e-6)


def test_vector_kind_adds_alpha_times_its_vector(input_ids):
    base = tiny_model("qwen2", num_layers=2)
    steered = SteeredModel(base, SteeringConfig(kind="vector", alpha=2.0, layers=(1,)))
    randomize(steered)
    assert steered.num_trainable_parameters() == 64  # H per steered layer
    seen = []  # the final norm's input is the last layer's (steered) output
    base.model.norm.register_forward_pre_hook(lambda m, a: seen.append(a[0].clone()))
    logits(steered, input_ids)
    with steered.disabled():
        logits(steered, input_ids)
    v = steered.adapters["layer1_block"].delta
    torch.testing.assert_close(seen[0] - seen[1], (2.0 * v).expand_as(seen[0]))


def test_parameter_counts_follow_the_protocol():
    base = tiny_model("llama", hidden_size=64, num_layers=4)
    steered = SteeredModel(base, SteeringConfig(rank=8))
    assert steered.num_trainable_parameters() == 2 * 8 * 64 * 4
    n_base = sum(p.numel() for p in base.parameters())
    assert steered.trainable_share() == pytest.approx(2 * 8 * 64 * 4 / n_base)
    assert "trainable params: 4,096" in steered.trainable_summary()
    two_sites = SteeredModel(tiny_model("llama"), SteeringConfig(sites=("attn", "mlp"), rank=1))
    assert two_sites.num_trainable_parameters() == 2 * 2 * 1 * 64 * 2


def test_adapters_take_the_base_dtype():
    base = tiny_model("llama", dtype=torch.bfloat16)
    steered = SteeredModel(base)
    assert {p.dtype for p in steered.adapters.parameters()} == {torch.bfloat16}


def test_gradients_reach_adapters_only_and_base_is_untouched(input_ids):
    base = tiny_model("llama", tie_word_embeddings=True)
    steered = SteeredModel(base)
    randomize(steered, scale=0.1)
    snapshot = {k: v.clone() for k, v in base.state_dict().items()}
    trainable = [p for p in steered.parameters() if p.requires_grad]
    assert {id(p) for p in trainable} == {id(p) for p in steered.adapters.parameters()}
    opt = torch.optim.AdamW(trainable, lr=1e-2)
    out = steered(input_ids=input_ids, labels=input_ids)
    out.loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in trainable)
    assert all(p.grad is None for p in base.parameters())
    opt.step()
    for k, v in base.state_dict().items():
        assert torch.equal(v, snapshot[k]), k


def test_remove_restores_the_base_bit_for_bit(input_ids):
    base = tiny_model("gemma3_text")
    base.lm_head.weight.requires_grad_(True)
    flags = {n: p.requires_grad for n, p in base.named_parameters()}
    expected = logits(base, input_ids)
    steered = SteeredModel(base, SteeringConfig(sites=("attn", "mlp")))
    randomize(steered)
    assert not torch.equal(logits(steered, input_ids), expected)
    assert not any(p.requires_grad for p in base.parameters())
    assert steered.remove() is base
    assert torch.equal(logits(base, input_ids), expected)
    assert {n: p.requires_grad for n, p in base.named_parameters()} == flags
    with pytest.raises(RuntimeError, match="hooks were removed"):
        steered(input_ids=input_ids)


def test_disabled_context_runs_the_plain_base(input_ids):
    base = tiny_model("llama")
    expected = logits(base, input_ids)
    steered = SteeredModel(base)
    randomize(steered)
    steered_logits = logits(steered, input_ids)
    with steered.disabled():
        assert torch.equal(logits(steered, input_ids), expected)
    assert torch.equal(logits(steered, input_ids), steered_logits)


@pytest.mark.parametrize("model_type", ["llama", "gpt2", "gemma3_text"])
def test_generate_with_kv_cache_matches_uncached_greedy(model_type, input_ids):
    """Steering is active on every cached decoding step, not only on the prompt."""
    base = tiny_model(model_type)
    steered = SteeredModel(base)
    randomize(steered, scale=1.0)
    prompt = input_ids[:1]
    out = steered.generate(
        input_ids=prompt,
        max_new_tokens=6,
        min_new_tokens=6,
        do_sample=False,
        use_cache=True,
        pad_token_id=0,
    )
    seq = prompt
    for _ in range(6):  # reference: a full forward over the whole sequence at every step
        seq = torch.cat([seq, logits(steered, seq)[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(out, seq)
    with steered.disabled():
        plain = steered.generate(
            input_ids=prompt, max_new_tokens=6, min_new_tokens=6, do_sample=False, pad_token_id=0
        )
    assert not torch.equal(plain, out)


def test_forward_returns_hf_outputs_with_loss(input_ids):
    steered = SteeredModel(tiny_model("llama"))
    out = steered(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), labels=input_ids)
    assert out.logits.shape == (2, 9, 512) and out.loss.ndim == 0
    assert steered.config is steered.base_model.config


def test_unsupported_architecture_names_the_supported_ones():
    from transformers import BloomConfig, BloomForCausalLM

    model = BloomForCausalLM(BloomConfig(vocab_size=64, hidden_size=32, n_layer=1, n_head=4))
    with pytest.raises(ValueError) as e:
        SteeredModel(model)
    msg = str(e.value)
    assert "model_type='bloom'" in msg and "'llama'" in msg and "'gpt_neox'" in msg
    assert "steering/architectures.py" in msg and "ARCHITECTURES['bloom']" in msg
    assert not any(p.requires_grad is False for p in model.parameters())  # untouched


def test_out_of_range_layer_fails_before_touching_the_base():
    base = tiny_model("llama", num_layers=2)
    with pytest.raises(ValueError, match="has 2 decoder layers"):
        SteeredModel(base, SteeringConfig(layers=(2,)))
    assert all(p.requires_grad for p in base.parameters())
    assert not any(m._forward_hooks for m in base.modules())
