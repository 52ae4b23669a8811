"""Logits only where a label is (steering/training/logits.py): for every method, on tiny models of
three architectures (Llama, Qwen2, Gemma-2 with tied embeddings and soft-capped logits), with
padding and a row whose completion was truncated away, the restricted step's loss and gradients
equal the full-logits step's up to summation order. Tolerance (float32): loss relative 1e-6; every
gradient tensor within 1e-5 of its own largest entry (measured: <= 1e-6). The Trainer feeds the head
the supervised positions alone, training ends where ``--logits all`` ends, and the setting is
recorded and fingerprinted (a resumed run equals an uninterrupted one under the default,
``supervised``: tests/test_resume.py, every method)."""

import json

import pytest
import torch

from steering.config import SteeringConfig
from steering.loading.tiny import tiny_model
from steering.methods import METHODS
from steering.training import resume
from steering.training.logits import SupervisedHead, loss_of, supervised_positions

ARCHITECTURES = {"llama": False, "qwen2": False, "gemma2": True}  # -> tied embeddings
CASES = {
    "steering": ("steering", {}, SteeringConfig(rank=4)),
    "vector": ("steering", {}, SteeringConfig(kind="vector", sites=("attn", "mlp"))),
    "last_token": ("steering", {}, SteeringConfig(rank=4, positions="last")),
    "lora": ("lora", {"rank": 2}, None),
    "full": ("full", {}, None),
    "reft": ("reft", {"rank": 2, "reft_first_n": 1, "reft_last_n": 2}, None),
    "joint": ("joint", {"lora_rank": 2}, SteeringConfig(rank=4)),
}


def _batch() -> dict[str, torch.Tensor]:
    """Right-padded rows: prompt then completion; row 1 padded; row 2 has no supervised token
    left (its completion was truncated away)."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(6, 500, (3, 12), generator=g)
    mask = torch.ones_like(ids)
    labels = ids.clone()
    labels[:, :7] = -100  # the prompt
    ids[1, 9:], mask[1, 9:], labels[1, 9:] = 0, 0, -100  # padding
    labels[2] = -100  # truncated away
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _steps(arch: str, case: str, restrict: bool) -> list:
    """(outputs, gradients) of one step, the loss reduced as the Trainer does (sum over the
    batch's supervised-token count) and as a plain mean."""
    name, options, steering = CASES[case]
    method = METHODS[name]
    base = tiny_model(arch, tie_word_embeddings=ARCHITECTURES[arch], seed=1).train()
    model = method.build(base, method.check_options(options), steering)
    torch.manual_seed(3)  # trained-looking values: LoRA's B and the adapters start at zero
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)
    head = SupervisedHead(model) if restrict else None
    found = []
    for reduce_by_count in (True, False):
        inputs = _batch()
        if reduce_by_count:
            inputs["num_items_in_batch"] = (inputs["labels"][:, 1:] != -100).sum()
        model.zero_grad(set_to_none=True)
        out = loss_of(model, head, inputs)
        out.loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
        found.append((out, grads))
    return found


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_loss_and_gradients_equal_the_full_logits_path(arch, case):
    n = int((_batch()["labels"][:, 1:] != -100).sum())
    pairs = zip(_steps(arch, case, False), _steps(arch, case, True), strict=True)
    for (full, full_grads), (part, part_grads) in pairs:
        assert full.logits.shape[:2] == (3, 12) and part.logits.shape[:2] == (1, n)
        torch.testing.assert_close(part.loss, full.loss, rtol=1e-6, atol=0)
        assert full_grads.keys() == part_grads.keys() and full_grads
        for key, g in full_grads.items():
            scale = g.abs().max().item()
            assert scale > 0, f"{key} got no gradient"  # the comparison means something
            assert (part_grads[key] - g).abs().max().item() <= 1e-5 * scale, key


def test_the_supervised_positions_and_their_targets():
    labels = torch.tensor([[-100, -100, 5, 6, -100], [-100, 7, -100, -100, -100]])
    mask, targets = supervised_positions(labels)
    assert mask.tolist() == [[False, True, True, False, False], [True, False, False, False, False]]
    assert targets.tolist() == [[5, 6, 7]]


def test_a_batch_without_supervised_tokens_gives_the_same_zero_loss():
    model = tiny_model("llama").train()
    inputs = {k: v[2:] for k, v in _batch().items()}  # the truncated row alone
    inputs["num_items_in_batch"] = torch.tensor(4)  # others of the accumulated batch have some
    full = loss_of(model, None, inputs).loss
    part = loss_of(model, SupervisedHead(model), inputs).loss
    assert full.item() == part.item() == 0.0
    part.backward()  # and the backward runs


def test_outside_a_training_step_the_head_sees_every_position():
    model = tiny_model("gemma2").train()
    head = SupervisedHead(model)
    batch = _batch()
    assert model(input_ids=batch["input_ids"]).logits.shape[:2] == (3, 12)
    with head.only({"input_ids": batch["input_ids"]}) as inputs:  # no labels: unchanged
        assert "shift_labels" not in inputs
    head.remove()
    assert loss_of(model, None, batch).logits.shape[:2] == (3, 12)


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    from steering.loading.tiny import save_tiny_model
    from steering.tasks import get_task
    from steering.tasks.files import write_prepared

    d = tmp_path_factory.mktemp("logits")
    save_tiny_model(d / "m", "llama", hidden_size=32, num_layers=2)
    task = get_task("BoolQ")
    write_prepared(task, task.make_splits(task.synthetic(scale=0.05)), d / "data", {"k": "s"})
    return d


def _settings(ws, out: str, **kw):
    from steering.training.run import TrainSettings

    base = dict(
        model_name=str(ws / "m"),
        dataset_name="BoolQ",
        data_dir=str(ws / "data"),
        max_train_samples=16,
        bs=4,
        epochs=1,
        lr=0.01,
        output_dir=str(ws / out),
        progress=False,
        logging_steps=1,
    )
    return TrainSettings(**{**base, **kw})


def test_the_trainer_feeds_the_head_the_supervised_positions_alone(ws):
    from steering.data import Collator, tokenize_split
    from steering.loading.loader import load_base_model, load_tokenizer
    from steering.tasks import get_task
    from steering.training.trainer import SteeringTrainer, training_arguments

    s = _settings(ws, "direct")
    task = get_task("BoolQ")
    tokenizer = load_tokenizer(s.model_name)
    rows = tokenize_split(task, task.load(s.data_dir)["train"].select(range(8)), tokenizer)
    rows = rows.map(lambda ex: {"length": len(ex["input_ids"])})
    model = METHODS["steering"].build(load_base_model(s.model_name), {}, SteeringConfig())
    seen = []
    for logits in ("supervised", "all"):
        trainer = SteeringTrainer(
            model=model,
            args=training_arguments(s, str(ws / f"direct-{logits}"), 1),
            train_dataset=rows,
            data_collator=Collator(tokenizer.pad_token_id),
            logits=logits,
        )
        hook = trainer.head.head if trainer.head else model.base_model.get_output_embeddings()
        handle = hook.register_forward_pre_hook(lambda m, a: seen.append(tuple(a[0].shape[:2])))
        trainer.train()
        handle.remove()
        if trainer.head:
            trainer.head.remove()
    supervised = sum(int((torch.tensor(r)[1:] != -100).sum()) for r in rows["labels"])
    restricted, everything = seen[:2], seen[2:]  # 8 rows, batch 4: two micro-batches each
    assert [b for b, _ in restricted] == [1, 1] and sum(n for _, n in restricted) == supervised
    assert [b for b, _ in everything] == [4, 4]


def test_training_with_and_without_ends_alike_and_records_the_setting(ws):
    from steering.training.run import TrainSettings, train

    a = train(_settings(ws, "supervised"))
    b = train(_settings(ws, "all", logits="all"))
    assert len(a["loss_history"]) == len(b["loss_history"]) > 1
    for (_, x), (_, y) in zip(a["loss_history"], b["loss_history"], strict=True):
        assert abs(x - y) <= 1e-5 * abs(y)  # the logged loss is the same quantity
    from safetensors.torch import load_file

    wa = load_file(ws / "supervised/adapter.safetensors")
    wb = load_file(ws / "all/adapter.safetensors")
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-4, atol=1e-6)
    recorded = json.loads((ws / "supervised/training.json").read_text())["settings"]
    assert recorded["logits"] == "supervised"
    assert json.loads((ws / "all/training.json").read_text())["settings"]["logits"] == "all"
    # a resume directory written under one setting is not resumed under the other
    assert resume.fingerprint(recorded, 1) != resume.fingerprint({**recorded, "logits": "all"}, 1)
    with pytest.raises(ValueError, match="--logits 'some' is invalid"):
        TrainSettings(model_name="m", dataset_name="BoolQ", logits="some")


def test_the_config_key_reaches_both_training_scripts_only_when_asked(monkeypatch):
    import importlib.util
    import shlex
    import sys

    from steering.pipeline import config_schema, jobs
    from tests.workflow import ROOT

    config = {
        "models": {"m": {"name": "org/M"}},
        "datasets": {"BoolQ": {}, "GSM8K": {"logits": "all"}},
        "variants": {"silu": {}, "joint": {"method": "joint", "logits": "all"}},
        "seeds": [0],
    }
    schema = config_schema.load(ROOT / "config/schema.yaml")
    assert config_schema.errors(config, schema) == []
    config_schema.fill_defaults(config, schema)
    assert config["training"]["logits"] == "supervised"
    assert "--logits" not in jobs.train_args(config, "m", "BoolQ", "silu", 0)  # params kept
    for dataset, variant in (("GSM8K", "silu"), ("BoolQ", "joint")):
        args = shlex.split(jobs.train_args(config, "m", dataset, variant, 0))
        assert args[args.index("--logits") + 1] == "all"
        script = ROOT / jobs.train_script(config, variant)
        spec = importlib.util.spec_from_file_location(f"script_{variant}", script)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        monkeypatch.setattr(sys, "argv", [str(script), *args])
        assert module.parse_args().logits == "all"
    bad = {**config, "variants": {"silu": {"logits": "some"}}}
    assert config_schema.errors(bad, schema)
