"""Packed batches (steering/training/packing.py): on tiny models of every architecture of the
registry and every method whose intervention is position-wise, the packed batch's loss and
trainable gradients equal the padded batch's; a mask or a cache makes rows attend to each
other (why both are left out); the methods and architectures it is not exact for are refused
and fall back to padding, recorded in training.json."""

import json

import pytest
import torch

from steering.config import SteeringConfig
from steering.data import Collator
from steering.loading.tiny import TINY_MODELS, tiny_model
from steering.methods import get_method
from steering.training import packing

LENGTHS = (5, 23, 9, 40)  # rows of very different lengths: the padded batch is mostly padding


def rows() -> list[dict[str, list[int]]]:
    g = torch.Generator().manual_seed(0)
    out = []
    for i, n in enumerate(LENGTHS):
        ids = torch.randint(5, 500, (n,), generator=g).tolist()
        # the third row is supervised from its first token, so packing must keep the row
        # before it from predicting that token
        labels = ids if i == 2 else [-100] * (n // 2) + ids[n // 2 :]
        out.append({"input_ids": ids, "attention_mask": [1] * n, "labels": labels})
    return out


def loss_and_grads(model, batch: dict) -> tuple[float, dict[str, torch.Tensor]]:
    model.zero_grad()
    loss = model(**batch).loss
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    return loss.item(), grads


def assert_packed_equals_padded(model) -> None:
    padded = loss_and_grads(model, Collator(0)(rows()))
    packed = loss_and_grads(model, packing.PackedCollator()(rows()))
    assert packed[0] == pytest.approx(padded[0], rel=1e-5)
    assert packed[1].keys() == padded[1].keys() and packed[1]
    for name, grad in padded[1].items():
        torch.testing.assert_close(packed[1][name], grad, rtol=1e-4, atol=1e-6, msg=name)


def steered(arch: str, attention: str | None = None, steering=None, method: str = "steering"):
    base = tiny_model(arch, initializer_range=0.2)
    if attention is not None:
        base.config._attn_implementation = attention
        text = base.config.get_text_config()
        text._attn_implementation = attention
    torch.manual_seed(1)
    model = get_method(method).build(base, get_method(method).check_options({}), steering)
    for p in (p for p in model.parameters() if p.requires_grad and not p.any()):
        torch.nn.init.normal_(p, std=0.1)  # W_up and LoRA's B start at zero: a gradient path
    return model.train()


EXACT = sorted(set(TINY_MODELS) - set(packing.ARCHITECTURE_REFUSALS))


@pytest.mark.parametrize("arch", EXACT)
@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_a_packed_batch_trains_as_the_padded_one_on_every_architecture(arch, attention):
    if arch == "gemma2" and attention == "sdpa":
        attention = None  # Gemma-2 forces eager attention (soft-capping)
    assert_packed_equals_padded(steered(arch, attention, SteeringConfig()))


def test_a_sliding_window_keeps_packed_rows_apart():
    base = tiny_model("mistral", initializer_range=0.2)
    base.config.sliding_window = 8  # shorter than the rows: the window is active
    torch.manual_seed(1)
    model = get_method("steering").build(base, {}, SteeringConfig())
    for p in (p for p in model.parameters() if p.requires_grad and not p.any()):
        torch.nn.init.normal_(p, std=0.1)
    assert_packed_equals_padded(model.train())


@pytest.mark.parametrize(
    "method, steering",
    [
        ("steering", SteeringConfig(kind="vector")),
        ("steering", SteeringConfig(sites=("attn", "mlp"))),
        ("lora", None),
        ("full", None),
        ("joint", SteeringConfig()),
    ],
    ids=["vectors", "submodules", "lora", "full", "joint"],
)
def test_a_packed_batch_trains_as_the_padded_one_for_every_position_wise_method(method, steering):
    assert_packed_equals_padded(steered("llama", "sdpa", steering, method))


def test_a_mask_or_a_cache_lets_packed_rows_attend_to_each_other():
    """Why the packed batch carries neither: with either, transformers skips the packed-
    sequence detection and the rows see each other, so the loss changes."""
    model = steered("llama", "sdpa", SteeringConfig())
    batch = packing.PackedCollator()(rows())
    exact = model(**batch).loss.item()
    assert model(**{**batch, "use_cache": True}).loss.item() != pytest.approx(exact, rel=1e-4)
    mask = torch.ones_like(batch["input_ids"])
    assert model(**batch, attention_mask=mask).loss.item() != pytest.approx(exact, rel=1e-4)


@pytest.mark.parametrize("arch", sorted(packing.ARCHITECTURE_REFUSALS))
def test_the_refused_architectures_are_the_ones_packing_breaks(arch):
    model = steered(arch, None, SteeringConfig())
    padded = model(**Collator(0)(rows())).loss.item()
    assert model(**packing.PackedCollator()(rows())).loss.item() != pytest.approx(padded, rel=1e-4)
    assert packing.refusal(arch, get_method("steering"), {}, SteeringConfig())


def test_methods_acting_on_particular_positions_are_refused():
    last = SteeringConfig(positions="last")
    assert "last-token" in packing.refusal("llama", get_method("steering"), {}, last)
    assert "ReFT" in packing.refusal("llama", get_method("reft"), {}, None)
    for name, steering in (("steering", SteeringConfig()), ("lora", None), ("full", None)):
        assert packing.refusal("llama", get_method(name), {}, steering) is None


def test_training_records_its_batch_layout(tmp_path):
    """A run packs by default; --no-packing, and a method packing is not exact for, pad; the
    same rows give the same loss both ways."""
    from steering.loading.tiny import save_tiny_model
    from steering.tasks import get_task
    from steering.tasks.files import write_prepared
    from steering.training.run import TrainSettings, train

    save_tiny_model(tmp_path / "m", "llama", hidden_size=32, num_layers=2)
    task = get_task("BoolQ")
    write_prepared(task, task.make_splits(task.synthetic(scale=0.02)), tmp_path / "d", {"k": 1})

    def run(name: str, **kw) -> dict:
        s = TrainSettings(
            model_name=str(tmp_path / "m"), dataset_name="BoolQ", data_dir=str(tmp_path / "d"),
            max_train_samples=32, output_dir=str(tmp_path / name), progress=False,
            logging_steps=1, **kw,
        )  # fmt: skip
        train(s)
        return json.loads((tmp_path / name / "training.json").read_text())

    packed, padded = run("packed"), run("padded", packing=False)
    assert (packed["batch_layout"], packed["packing_refused"]) == ("packed", None)
    assert (padded["batch_layout"], padded["packing_refused"]) == ("padded", None)
    assert packed["settings"]["packing"] and not padded["settings"]["packing"]
    for (step, a), (_, b) in zip(packed["loss_history"], padded["loss_history"], strict=True):
        assert a == pytest.approx(b, rel=1e-4), step
    last = run("last", steering=SteeringConfig(positions="last"))
    assert last["batch_layout"] == "padded" and "last-token" in last["packing_refused"]
