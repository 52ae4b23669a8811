"""LoReFT: orthonormal R through training, interventions on the configured prompt positions
only (forward and cached generation), closed-form parameter count, checkpoints."""

import pytest
import torch

from steering.architectures import decoder_layers
from steering.loading.tiny import tiny_model
from steering.methods.reft.model import ReftModel


def model_with(first_n=0, last_n=1, seed=0):
    torch.manual_seed(seed)
    m = ReftModel(
        tiny_model("llama", num_layers=2, initializer_range=0.3),
        rank=4,
        first_n=first_n,
        last_n=last_n,
    )
    with torch.no_grad():
        for p in m.interventions.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    return m


def test_trainable_count_is_closed_form():
    m = ReftModel(tiny_model("llama", num_layers=3), rank=8)
    assert m.num_trainable_parameters() == 3 * (8 * 64 + 8 * 64 + 8)  # R, W, b per layer
    assert not any(p.requires_grad for p in m.base_model.parameters())


def test_r_stays_orthonormal_through_training():
    m = model_with()
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=0.05)
    ids = torch.randint(3, 500, (2, 8))
    labels = ids.clone()
    labels[:, :4] = -100
    for _ in range(5):
        opt.zero_grad()
        m(input_ids=ids, labels=labels).loss.backward()
        opt.step()
    for iv in m.interventions:
        r = iv.rotate.weight
        torch.testing.assert_close(r @ r.T, torch.eye(4), rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    "first_n, last_n, expected", [(0, 1, [3]), (2, 2, [0, 1, 2, 3]), (1, 1, [0, 3])]
)
def test_training_positions_are_the_prompts_first_and_last_tokens(first_n, last_n, expected):
    m = model_with(first_n, last_n)
    ids = torch.randint(3, 500, (1, 8))
    labels = ids.clone()
    labels[:, :4] = -100  # prompt = positions 0..3
    with torch.no_grad():
        m(input_ids=ids, labels=labels)
    assert m._mask[0, :, 0].nonzero().flatten().tolist() == expected
    left = m.positions_mask(torch.tensor([[0, 0, 1, 1, 1, 1]]), None)  # generation, left padded
    assert left[0].nonzero().flatten().tolist() == sorted(
        {*range(2, 2 + first_n), *range(6 - last_n, 6)}
    )


def test_intervened_outputs_differ_only_at_selected_positions():
    m = model_with(0, 1)
    layer0 = decoder_layers(m.base_model)[0]
    before, after = {}, {}
    h1 = layer0.register_forward_hook(
        lambda mod, a, out: before.setdefault("h", out.detach().clone())
    )
    # move our observer before ReFT's hook: re-register ReFT's layer-0 hook after it
    m._handles[1].remove()
    m._handles[1] = layer0.register_forward_hook(m._hook(0))
    h2 = layer0.register_forward_hook(
        lambda mod, a, out: after.setdefault("h", out.detach().clone())
    )
    ids = torch.randint(3, 500, (2, 7))
    with torch.no_grad():
        m(input_ids=ids)  # generation-style: the whole input is the prompt, last token intervened
    diff = (after["h"] - before["h"]).abs().sum(-1)  # (B, S)
    assert (diff[:, :-1] == 0).all() and (diff[:, -1] > 0).all()
    h1.remove()
    h2.remove()


def naive_generate(m, ids, steps):
    """Full recompute per step with the prompt's interventions re-applied at its positions."""
    seq = ids
    prompt_mask = m.positions_mask(torch.ones_like(ids), None)
    m._handles[0].remove()  # no automatic position choice: fixed by hand to the prompt's
    for _ in range(steps):
        extra = torch.zeros(ids.shape[0], seq.shape[1] - ids.shape[1], dtype=torch.bool)
        m._mask = torch.cat([prompt_mask, extra], 1)[..., None]
        with torch.no_grad():
            logits = m.base_model(input_ids=seq).logits
        seq = torch.cat([seq, logits[:, -1].argmax(-1, keepdim=True)], 1)
    return seq[:, ids.shape[1] :]


@pytest.mark.parametrize("first_n, last_n", [(0, 1), (2, 1)])
def test_cached_generation_intervenes_exactly_on_the_prompt(first_n, last_n):
    m = model_with(first_n, last_n, seed=1)
    ids = torch.randint(3, 500, (2, 6))
    out = m.generate(
        input_ids=ids, max_new_tokens=12, min_new_tokens=12, do_sample=False, pad_token_id=0
    )
    got = out[:, 6:]
    m2 = model_with(first_n, last_n, seed=1)
    m2.interventions.load_state_dict(m.interventions.state_dict())
    assert torch.equal(got, naive_generate(m2, ids, 12))
    plain = m.base_model
    m._mask = None
    for h in m._handles:
        h.remove()
    base_out = plain.generate(
        input_ids=ids, max_new_tokens=12, min_new_tokens=12, do_sample=False, pad_token_id=0
    )
    assert not torch.equal(base_out[:, 6:], got)


def test_checkpoint_round_trip(tmp_path):
    m = model_with(2, 1)
    ids = torch.randint(3, 500, (2, 6))
    with torch.no_grad():
        expected = m(input_ids=ids).logits
    m.save(tmp_path)
    again = ReftModel.load(tiny_model("llama", num_layers=2, initializer_range=0.3), tmp_path)
    assert (again.first_n, again.last_n, again.rank) == (2, 1, 4)
    with torch.no_grad():
        torch.testing.assert_close(again(input_ids=ids).logits, expected, rtol=0, atol=1e-6)
