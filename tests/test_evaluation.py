"""Batched greedy evaluation: identical to one-prompt-at-a-time decoding, cut by token ids."""

import json

import pytest
import torch

from steering import SteeredModel, SteeringConfig
from steering.evaluation.evaluator import evaluate, write_results
from steering.evaluation.generation import greedy_generate
from steering.loading.tiny import tiny_model
from steering.runtime.provenance import items_digest
from steering.tasks import get_task
from tests.conftest import randomize


def _one_at_a_time(model, prompts, max_new_tokens, eos):
    """Reference: each prompt alone, a full forward per step, no cache, no padding."""
    outs = []
    for p in prompts:
        seq = torch.tensor([p])
        new = []
        for _ in range(max_new_tokens):
            with torch.no_grad():
                nxt = int(model(input_ids=seq).logits[0, -1].argmax())
            if nxt == eos:
                break
            new.append(nxt)
            seq = torch.cat([seq, torch.tensor([[nxt]])], dim=1)
        outs.append(new)
    return outs


@pytest.mark.parametrize("model_type", ["llama", "gpt2"])
def test_batched_equals_one_at_a_time(model_type, tokenizer):
    base = tiny_model(model_type, vocab_size=len(tokenizer), initializer_range=0.3)
    model = SteeredModel(base, SteeringConfig())
    randomize(model, scale=0.2)
    texts = [f"Question {i}: is the {w} red?" * (1 + i % 4) for i, w in enumerate("abcdefghij")]
    prompts = [tokenizer(t).input_ids for t in texts]
    assert len({len(p) for p in prompts}) > 3  # really different lengths -> real left padding
    eos = tokenizer.eos_token_id
    batched = greedy_generate(
        model, prompts, 8, tokenizer.pad_token_id, eos, batch_size=4, progress=False
    )
    single = greedy_generate(
        model, prompts, 8, tokenizer.pad_token_id, eos, batch_size=1, progress=False
    )
    assert batched.tokens == single.tokens == _one_at_a_time(model, prompts, 8, eos)
    assert batched.num_generated == single.num_generated > 0


def test_continuation_is_cut_at_eos(tokenizer):
    base = tiny_model("llama", vocab_size=len(tokenizer))
    eos = tokenizer.eos_token_id
    with torch.no_grad():  # make EOS the argmax everywhere: generation stops at once
        base.lm_head.weight.zero_()
        base.lm_head.weight[eos] = 1.0
        base.model.norm.weight.fill_(1.0)
    prompts = [tokenizer("a b c").input_ids, tokenizer("d").input_ids]
    out = greedy_generate(base, prompts, 5, tokenizer.pad_token_id, eos, progress=False)
    assert out.tokens == [[], []] and out.num_generated == 2  # one EOS each


def test_generation_runs_in_inference_mode(tokenizer):
    # inference_mode skips autograd's version counters: measurably faster than generate's
    # own no_grad (benchmarks/README.md); a decorator moved off greedy_generate loses it.
    base = tiny_model("llama", vocab_size=len(tokenizer))
    seen = []
    base.model.layers[0].register_forward_hook(
        lambda *_: seen.append(torch.is_inference_mode_enabled())
    )
    greedy_generate(base, [tokenizer("a b").input_ids], 3, tokenizer.pad_token_id, progress=False)
    assert seen and all(seen)


def test_evaluate_records_and_metrics(tokenizer, tmp_path):
    task = get_task("ListOps")
    data = task.make_splits(task.synthetic(seed=0, scale=0.05))["test"].select(range(5))
    model = tiny_model("llama", vocab_size=len(tokenizer))
    records, metrics = evaluate(model, tokenizer, task, data, batch_size=2, progress=False)
    assert [r["prompt"] for r in records] == [task.prompt(r) for r in data]
    assert [r["label"] for r in records] == [task.label(r) for r in data]
    assert all(r["eval"] == task.score(r["output"], r["label"]) for r in records)
    assert all(r["eval_strict"] == task.score_strict(r["output"], r["label"]) for r in records)
    assert metrics["n"] == 5 and metrics["accuracy"] == sum(r["eval"] for r in records) / 5
    assert metrics["accuracy_strict"] == sum(r["eval_strict"] for r in records) / 5
    assert (metrics["chat_template"], metrics["single_bos"]) == (False, False)  # the input path
    assert metrics["tokens_generated"] <= 5 * task.max_new_tokens
    # the per-item verdicts the tables' paired intervals read (steering/pipeline/items.py)
    assert metrics["correct_items"] == "".join(str(int(r["eval"])) for r in records)
    assert metrics["correct_items_strict"] == "".join(str(int(r["eval_strict"])) for r in records)
    assert metrics["items_sha256"] == items_digest(records) != items_digest(records[:4])
    rec_path, met_path = write_results(
        tmp_path / "test.json", "test", records, metrics, {"seed": 1}
    )
    lines = rec_path.read_text().splitlines()
    assert [json.loads(line) for line in lines] == records
    assert set(json.loads(lines[0])) == {"prompt", "output", "label", "eval", "eval_strict"}
    assert met_path.name == "test.metrics.json"
    assert json.loads(met_path.read_text())["provenance"] == {"seed": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test.json", "test.metrics.json"]


def test_empty_split_is_an_error(tokenizer):
    task = get_task("BoolQ")
    empty = task.make_splits(task.synthetic(scale=0.01))["test"].select([])
    with pytest.raises(ValueError, match="nothing to evaluate"):
        evaluate(tiny_model("llama"), tokenizer, task, empty, progress=False)


def _static_cache_models(tokenizer):
    """Every kind of model evaluation decodes with: steering hooks (all positions, and the
    last-token decoder), PEFT LoRA and ReFT's prompt-position interventions."""
    from steering.methods import get_method
    from steering.methods.reft.model import ReftModel

    def base():
        return tiny_model("llama", vocab_size=len(tokenizer), initializer_range=0.3)

    steered = SteeredModel(base(), SteeringConfig())
    randomize(steered, scale=0.2)
    last = SteeredModel(base(), SteeringConfig(positions="last"))
    randomize(last, scale=0.2)
    lora = get_method("lora").build(base(), {"rank": 4})
    reft = ReftModel(base(), 4, 2, 2)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in [*lora.parameters(), *reft.parameters()]:
            if p.requires_grad:
                p.normal_(0, 0.3)
    return {"steering": steered, "last-token": last, "lora": lora, "reft": reft}


def test_static_cache_decodes_the_same_tokens_for_every_method(tokenizer):
    # --decode-cache static (HF's StaticCache, the path torch.compile takes on a GPU) must not
    # change a single evaluated token: same prompts of different lengths, batched, any method.
    prompts = [
        tokenizer(f"Question {i}: is it {'red ' * (1 + i % 3)}?").input_ids for i in range(5)
    ]
    pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
    for name, model in _static_cache_models(tokenizer).items():
        model.eval()
        dynamic = greedy_generate(model, prompts, 6, pad, eos, batch_size=3, progress=False)
        static = greedy_generate(
            model, prompts, 6, pad, eos, batch_size=3, progress=False, cache="static"
        )
        assert static.tokens == dynamic.tokens, name
        assert sum(map(len, dynamic.tokens)) > 0, name


def test_a_bad_decoding_cache_is_refused_with_the_valid_names(tokenizer):
    base = tiny_model("llama", vocab_size=len(tokenizer))
    ids = [tokenizer("a").input_ids]
    with pytest.raises(ValueError, match=r"valid names: \['dynamic', 'static'\]"):
        greedy_generate(base, ids, 2, tokenizer.pad_token_id, cache="paged", progress=False)
    with pytest.raises(ValueError, match="static cache"):
        greedy_generate(base, ids, 2, tokenizer.pad_token_id, compile=True, progress=False)
