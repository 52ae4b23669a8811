"""Last-token steering against its definition, computed naively (one pass per prefix)."""

import pytest
import torch
import torch.nn.functional as F

from steering import SteeredModel, SteeringConfig
from steering.evaluation.generation import greedy_generate
from steering.last_token import positions
from steering.loading.tiny import tiny_model
from tests.conftest import randomize

ARCHS = ["llama", "qwen2", "gemma", "gpt2", "gemma3_text"]


def batch(pad_side: str, b: int = 3, s: int = 9, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 500, (b, s), generator=g)
    mask = torch.ones(b, s, dtype=torch.long)
    if pad_side == "left":
        mask[0, :3] = 0
        mask[2, :1] = 0
    else:
        mask[0, -3:] = 0
        mask[2, -1:] = 0
    ids = ids.masked_fill(mask == 0, 0)
    # a masked "prompt": each row's first two real tokens (a padded position predicts nothing)
    labels = ids.masked_fill((mask == 0) | (mask.cumsum(-1) <= 2), -100)
    return ids, mask, labels


def naive_logits(model: SteeredModel, ids, mask):
    """Position t: a pass over the prefix ..t steering only position t."""
    out = []
    pos = positions(mask)
    for t in range(ids.shape[1]):
        with model.steering_from(t):
            logits = model.base_model(
                input_ids=ids[:, : t + 1],
                attention_mask=mask[:, : t + 1],
                position_ids=pos[:, : t + 1],
            ).logits
        out.append(logits[:, t])
    return torch.stack(out, dim=1)


def lm_loss(logits, labels):
    return F.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=-100
    )


@pytest.mark.parametrize("model_type", ARCHS)
@pytest.mark.parametrize("pad_side", ["left", "right"])
@pytest.mark.parametrize(
    "config",
    [
        SteeringConfig(positions="last"),
        SteeringConfig(positions="last", kind="vector"),
        SteeringConfig(positions="last", sites=("attn", "mlp"), activation=None, rank=2),
    ],
    ids=["adapter", "vector", "submodules"],
)
def test_logits_loss_and_gradients_equal_the_definition(model_type, pad_side, config):
    model = SteeredModel(tiny_model(model_type, num_layers=2), config)
    randomize(model, scale=0.3)
    ids, mask, labels = batch(pad_side)
    packed = model(input_ids=ids, attention_mask=mask, labels=labels)
    naive = naive_logits(model, ids, mask)
    real = mask.bool()
    torch.testing.assert_close(packed.logits[real], naive[real], rtol=0, atol=1e-5)
    naive_loss = lm_loss(naive, labels)
    torch.testing.assert_close(packed.loss, naive_loss, rtol=0, atol=1e-5)
    params = list(model.adapters.parameters())
    g_packed = torch.autograd.grad(packed.loss, params)
    g_naive = torch.autograd.grad(naive_loss, params)
    for a, b in zip(g_packed, g_naive, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    assert any(g.abs().sum() > 0 for g in g_packed)


def naive_generate(model: SteeredModel, ids, mask, steps: int, pick=None):
    pick = pick or (lambda logits: logits.argmax(-1))
    seq, m = ids, mask
    for _ in range(steps):
        with torch.no_grad(), model.steering_from(seq.shape[1] - 1):
            logits = model.base_model(
                input_ids=seq, attention_mask=m, position_ids=positions(m)
            ).logits
        seq = torch.cat([seq, pick(logits[:, -1])[:, None]], dim=1)
        m = torch.cat([m, torch.ones_like(m[:, :1])], dim=1)
    return seq[:, ids.shape[1] :]


@pytest.mark.parametrize("model_type", ARCHS)
def test_cached_generation_equals_naive_recompute(model_type):
    model = SteeredModel(
        tiny_model(model_type, num_layers=2, initializer_range=0.3),
        SteeringConfig(positions="last"),
    )
    randomize(model, scale=0.3)
    ids, mask, _ = batch("left")
    out = model.generate(
        input_ids=ids, attention_mask=mask, max_new_tokens=24, eos_token_id=None, pad_token_id=0
    )
    assert out.shape == (3, ids.shape[1] + 24)
    assert torch.equal(out[:, ids.shape[1] :], naive_generate(model, ids, mask, 24))
    with model.disabled():  # and it really differs from steering every token / none
        plain = model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=24,
            do_sample=False,
            pad_token_id=0,
            eos_token_id=None,
            min_new_tokens=24,
        )
    assert not torch.equal(plain[:, ids.shape[1] :], out[:, ids.shape[1] :])


def test_the_evaluator_path_matches_naive_generation(tokenizer):
    model = SteeredModel(
        tiny_model("llama", vocab_size=len(tokenizer), initializer_range=0.3),
        SteeringConfig(positions="last"),
    )
    randomize(model, scale=0.3)
    prompts = [
        tokenizer(t).input_ids
        for t in ["Is it red?", "Answer the question: is the sky blue today?", "x"]
    ]
    got = greedy_generate(
        model, prompts, 12, tokenizer.pad_token_id, eos_token_id=[], batch_size=2, progress=False
    )
    for p, tokens in zip(prompts, got.tokens, strict=True):
        ids = torch.tensor([p])
        assert tokens == naive_generate(model, ids, torch.ones_like(ids), 12)[0].tolist()


def test_sampled_generation_draws_from_the_last_token_steered_distribution():
    """Sampling (GRPO's rollouts) under HF's warpers: with the same random stream, the cached
    decoder draws exactly the tokens a naive recompute draws from its logits; top-k 1 is
    greedy; beams are refused."""
    from transformers import GenerationConfig

    from steering.last_token import sampler

    model = SteeredModel(
        tiny_model("llama", num_layers=2, initializer_range=0.3), SteeringConfig(positions="last")
    )
    randomize(model, scale=0.3)
    ids, mask, _ = batch("left")
    config = GenerationConfig(do_sample=True, temperature=0.7, top_p=0.9, max_new_tokens=8)
    config.eos_token_id = None
    torch.manual_seed(3)
    got = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
    torch.manual_seed(3)
    want = naive_generate(model, ids, mask, 8, pick=sampler(config))
    assert torch.equal(got[:, ids.shape[1] :], want)
    greedy = GenerationConfig(do_sample=True, top_k=1, max_new_tokens=8)
    greedy.eos_token_id = None
    top1 = model.generate(input_ids=ids, attention_mask=mask, generation_config=greedy)
    assert torch.equal(top1[:, ids.shape[1] :], naive_generate(model, ids, mask, 8))
    with pytest.raises(ValueError, match="one beam"):
        model.generate(input_ids=ids, attention_mask=mask, num_beams=2)


def test_generation_stops_at_eos_and_pads():
    model = SteeredModel(tiny_model("llama"), SteeringConfig(positions="last"))

    def eos_wins(module, args, logits):  # EOS (2) becomes the argmax everywhere
        return logits.index_fill(-1, torch.tensor([2]), 1e4)

    model.base_model.lm_head.register_forward_hook(eos_wins)
    ids, mask, _ = batch("left")
    out = model.generate(
        input_ids=ids, attention_mask=mask, max_new_tokens=5, eos_token_id=2, pad_token_id=0
    )
    assert out[:, ids.shape[1] :].tolist() == [[2]] * 3


def test_all_positions_are_unchanged_and_default():
    model = SteeredModel(tiny_model("llama"), SteeringConfig())
    randomize(model)
    ids, mask, _ = batch("right")
    assert model._steer_from == 0
    expected = model.base_model(input_ids=ids, attention_mask=mask).logits
    torch.testing.assert_close(model(input_ids=ids, attention_mask=mask).logits, expected)


def test_sliding_window_models_get_a_clear_error():
    base = tiny_model("mistral")
    base.config.sliding_window = 4
    model = SteeredModel(base, SteeringConfig(positions="last"))
    ids, mask, _ = batch("right")
    with pytest.raises(
        ValueError, match="sliding window of 4 tokens; the sequence has 9 positions"
    ):
        model(input_ids=ids, attention_mask=mask)


def test_trainer_trains_last_token_steering(tmp_path):
    from transformers import Trainer, TrainingArguments

    from steering.data import Collator

    model = SteeredModel(tiny_model("llama"), SteeringConfig(positions="last"))
    ids, mask, labels = batch("right", b=8)
    rows = [
        {"input_ids": i.tolist(), "attention_mask": m.tolist(), "labels": lab.tolist()}
        for i, m, lab in zip(ids, mask, labels, strict=True)
    ]
    args = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=3,
        per_device_train_batch_size=4,
        learning_rate=1e-2,
        report_to="none",
        use_cpu=True,
        save_strategy="no",
        remove_unused_columns=False,
        disable_tqdm=True,
        logging_steps=1,
    )
    trainer = Trainer(model=model, args=args, train_dataset=rows, data_collator=Collator(0))
    trainer.train()
    assert any(
        p.abs().sum() > 0 for n, p in model.adapters.named_parameters() if n.endswith("up.weight")
    )
