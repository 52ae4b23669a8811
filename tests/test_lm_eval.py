"""lm-evaluation-harness through ``SteeringLM``: every method's checkpoint scores exactly what
its own definition gives (the base as plain HFLM, all-position steering as HFLM on the hooked
base, last-token steering as one forward per prefix, ReFT as a forward with the intervention
at the context's end, LoRA, full and joint as their own forward), the steered-format export,
the command line, and its bad input. Offline: tasks from local files, the tiny checkpoints of
tests/data/checkpoints."""

import json
import sys
from pathlib import Path

import lm_eval
import pytest
import torch
from lm_eval.api.instance import Instance
from lm_eval.models.hf_steered import SteeredModel as LmEvalSteered
from lm_eval.models.huggingface import HFLM
from lm_eval.tasks import TaskManager

from steering.config import SteeringConfig
from steering.lm_eval import INSTALL, SteeringLM, checkpoints, steered, tasks
from steering.lm_eval.__main__ import main
from steering.model import SteeredModel
from tests.conftest import cpu_env

ROOT = Path(__file__).resolve().parent.parent
CKPTS = ROOT / "tests" / "data" / "checkpoints"
BASE = CKPTS / "base"
ARC_ROWS = ROOT / "tests" / "data" / "real" / "ARC_Challenge" / "test.jsonl"

PAIRS = [  # contexts of three lengths, continuations of one to several tokens
    ("Question: Which gas do plants take in?\nAnswer:", " carbon dioxide"),
    ("Question: Which gas do plants take in?\nAnswer:", " oxygen"),
    ("Question: What is two plus two?\nAnswer:", " four"),
    ("Question: What is two plus two?\nAnswer:", " twenty two apples"),
    ("The sun rises in the", " east"),
    ("The sun rises in the", " west and sets in the east"),
]
GEN = {"until": ["\n"], "max_gen_toks": 6, "do_sample": False}
PROMPTS = ["Question: What is two plus two?\nAnswer:", "The sun rises in the", "Plants take in"]
TEXTS = ["The sun rises in the east and sets in the west. " * 3, "Two plus two is four."]


def ll(lm, pairs=PAIRS) -> list[float]:
    requests = [Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(pairs)]
    return [logp for logp, _ in lm.loglikelihood(requests, disable_tqdm=True)]


def generated(lm, prompts=PROMPTS) -> list[str]:
    requests = [Instance("generate_until", {}, (p, dict(GEN)), i) for i, p in enumerate(prompts)]
    return lm.generate_until(requests, disable_tqdm=True)


def rolling(lm) -> list[float]:
    requests = [Instance("loglikelihood_rolling", {}, (t,), i) for i, t in enumerate(TEXTS)]
    return lm.loglikelihood_rolling(requests, disable_tqdm=True)


def bridge(name: str | None, models: Path, batch_size: int = 4) -> SteeringLM:
    """The bridge on a shipped checkpoint, ``pretrained`` named as the checkpoint records it
    (``base`` or ``tiny-llama``: links to tests/data/checkpoints/base)."""
    if name is None:
        return SteeringLM(pretrained=str(BASE), batch_size=batch_size)
    recorded = Path(checkpoints.recorded_base(CKPTS / name)).name
    return SteeringLM(
        checkpoint=str(CKPTS / name), pretrained=str(models / recorded), batch_size=batch_size
    )


def scores(model, lm, pairs=PAIRS) -> list[float]:
    """Reference: each request's log-probability from one forward of ``model`` on context +
    continuation (HFLM's own token encoding)."""
    out = []
    for context, continuation in pairs:
        ctx, cont = lm._encode_pair(context, continuation)
        ids = torch.tensor([ctx + cont[:-1]])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, -len(cont) :]
        logp = torch.log_softmax(logits.float(), -1)
        out.append(float(logp[torch.arange(len(cont)), torch.tensor(cont)].sum()))
    return out


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    """The tiny base model under the names the shipped checkpoints record."""
    where = tmp_path_factory.mktemp("models")
    for name in ("base", "tiny-llama"):
        (where / name).symlink_to(BASE, target_is_directory=True)
    return where


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory) -> Path:
    """lm-eval's arc_challenge over the shipped ARC rows, and a generate_until task."""
    where = tmp_path_factory.mktemp("tasks")
    tasks.arc_challenge(where, ARC_ROWS)
    rows = [{"question": p, "answer": "four"} for p in PROMPTS]
    tasks.local_task(
        where,
        "short_answers",
        rows=rows,
        output_type="generate_until",
        doc_to_text="{{question}}",
        doc_to_target="{{answer}}",
        generation_kwargs=GEN,
        metric_list=[{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}],
    )
    return where


@pytest.fixture(scope="module")
def task_manager(task_dir) -> TaskManager:
    return TaskManager(include_path=str(task_dir), include_defaults=False)


@pytest.fixture(scope="module")
def plain() -> HFLM:
    return HFLM(pretrained=str(BASE), batch_size=4, device="cpu")


@pytest.fixture(scope="module")
def base_lm() -> SteeringLM:
    return bridge(None, None)


def test_the_base_model_through_the_bridge_equals_plain_hflm(plain, base_lm, task_manager):
    assert ll(base_lm) == ll(plain)
    assert rolling(base_lm) == rolling(plain)
    assert generated(base_lm) == generated(plain)
    run = {"tasks": ["arc_challenge_local", "short_answers"], "task_manager": task_manager}
    theirs = lm_eval.simple_evaluate(model=plain, limit=3, log_samples=True, **run)
    ours = lm_eval.simple_evaluate(model=base_lm, limit=3, log_samples=True, **run)
    for task in run["tasks"]:
        assert ours["results"][task] == theirs["results"][task]
        assert [s["resps"] for s in ours["samples"][task]] == [
            s["resps"] for s in theirs["samples"][task]
        ]
    arc = ours["results"]["arc_challenge_local"]
    assert {"acc,none", "acc_norm,none"} <= set(arc) and arc["sample_len"] == 3
    info = ours["config"]["steering"]
    assert info["method"] == "base" and info["checkpoint"] is None
    assert info["base_model"] == str(BASE) and info["trainable_parameters"] == 0


def test_all_position_steering_equals_hflm_on_the_hooked_base(models):
    lm = bridge("steering", models)
    hooked = checkpoints.load(str(CKPTS / "steering"), str(models / "tiny-llama"), device="cpu")
    assert isinstance(hooked.model, SteeredModel)
    reference = HFLM(pretrained=hooked.base, tokenizer=str(BASE), batch_size=4)
    assert ll(lm) == ll(reference)
    assert generated(lm) == generated(reference)
    with hooked.model.disabled():  # the steering changes the numbers it is compared on
        assert ll(reference) != ll(lm)


@pytest.fixture(scope="module")
def last_token_checkpoint(tmp_path_factory, models) -> Path:
    """The shipped steering checkpoint's adapters under last-token steering."""
    base = checkpoints.load(None, str(models / "tiny-llama"), device="cpu").base
    steered_all = SteeredModel.from_pretrained(base, CKPTS / "steering")
    last = SteeredModel(steered_all.remove(), SteeringConfig(rank=8, positions="last"))
    last.adapters.load_state_dict(steered_all.adapters.state_dict())
    return last.save_pretrained(tmp_path_factory.mktemp("last") / "checkpoint")


def test_last_token_steering_scores_each_prefix_steered_at_its_last_token(
    last_token_checkpoint, models
):
    lm = SteeringLM(checkpoint=str(last_token_checkpoint), batch_size=4)  # its recorded base
    one = SteeringLM(checkpoint=str(last_token_checkpoint), batch_size=1)
    assert lm.last_token and lm.loaded.base_model == str(models / "tiny-llama")
    steered_last = lm.routed
    expected = []
    for context, continuation in PAIRS:  # the definition: one forward per prefix
        ctx, cont = lm._encode_pair(context, continuation)
        whole, total = ctx + cont, 0.0
        for j, token in enumerate(cont):
            prefix = torch.tensor([whole[: len(ctx) + j]])
            with torch.no_grad(), steered_last.steering_from(prefix.shape[1] - 1):
                logits = steered_last.base_model(input_ids=prefix).logits[0, -1]
            total += float(torch.log_softmax(logits, -1)[token])
        expected.append(total)
    batched = ll(lm)
    assert batched == pytest.approx(expected, rel=1e-5, abs=1e-5)
    assert ll(one) == pytest.approx(batched, rel=1e-5, abs=1e-5)
    assert batched != pytest.approx(ll(bridge("steering", models)), abs=1e-3)  # all positions
    # generation: greedy, steering the last token at every step, one prompt at a time
    for prompt, text in zip(PROMPTS, generated(lm), strict=True):
        ids = torch.tensor([lm.tok_encode(prompt)])
        out = steered_last.generate(
            input_ids=ids, max_new_tokens=GEN["max_gen_toks"], eos_token_id=2, pad_token_id=0
        )
        expected_text = lm.tok_decode(out[0, ids.shape[1] :].tolist())
        assert text == expected_text.split("\n")[0]
    assert generated(one) == generated(lm)


def test_reft_intervenes_at_the_end_of_each_requests_context(models):
    lm = bridge("reft", models)
    reft = lm.routed
    assert lm.prompt_positions and (reft.first_n, reft.last_n) == (1, 2)
    expected = []
    for context, continuation in PAIRS:
        ctx, cont = lm._encode_pair(context, continuation)
        with torch.no_grad():  # the prompt pass intervenes on the context; cached steps do not
            first = reft(input_ids=torch.tensor([ctx]), use_cache=True)
            logits = [first.logits[0, -1:]]
            if len(cont) > 1:
                rest = reft(
                    input_ids=torch.tensor([cont[:-1]]),
                    past_key_values=first.past_key_values,
                    use_cache=True,
                )
                logits.append(rest.logits[0])
        logp = torch.log_softmax(torch.cat(logits), -1)
        expected.append(float(logp[torch.arange(len(cont)), torch.tensor(cont)].sum()))
    assert ll(lm) == pytest.approx(expected, rel=1e-5, abs=1e-5)
    # at the end of the padded input instead, the numbers differ
    lm.prompt_positions = False
    try:
        assert ll(lm) != pytest.approx(expected, abs=1e-3)
    finally:
        lm.prompt_positions = True
    assert len(generated(lm)) == len(PROMPTS)


@pytest.mark.parametrize("name", ["lora", "full", "joint", "submodules"])
def test_other_methods_through_the_bridge_match_their_own_forward(name, models, base_lm):
    lm = bridge(name, models)
    ours = ll(lm)
    assert ours == pytest.approx(scores(lm.routed, lm), rel=1e-5, abs=1e-5)
    assert ours != pytest.approx(ll(base_lm), abs=1e-3)  # the checkpoint changes the numbers
    assert len(generated(lm)) == len(PROMPTS)
    assert lm.get_model_info()["steering"]["method"] == name.replace("submodules", "steering")


def test_a_vector_checkpoint_exported_gives_lm_evals_steered_model_the_same_numbers(
    models, tmp_path
):
    pt = steered.export(CKPTS / "vector", tmp_path / "vector.pt", str(models / "tiny-llama"))
    config = torch.load(pt, weights_only=True)
    assert sorted(config) == ["layers.0", "layers.1"]
    assert config["layers.0"]["action"] == "add" and config["layers.0"]["steering_vector"].shape
    theirs = LmEvalSteered(pretrained=str(BASE), steer_path=str(pt), device="cpu", batch_size=4)
    ours = bridge("vector", models)
    assert ll(ours) == pytest.approx(ll(theirs), rel=1e-6, abs=1e-6)
    assert generated(ours) == generated(theirs)
    with pytest.raises(ValueError, match="low-rank adapters depend on their input"):
        steered.export(CKPTS / "steering", tmp_path / "adapter.pt", str(models / "tiny-llama"))


def test_batch_size_is_the_constructors(models):
    sizes: dict[int, list[int]] = {}
    for batch in (1, 3):
        lm = bridge("steering", models, batch_size=batch)
        seen = sizes.setdefault(batch, [])
        lm.loaded.base.register_forward_pre_hook(
            lambda module, args, kwargs, seen=seen: seen.append(kwargs["input_ids"].shape[0]),
            with_kwargs=True,
        )
        ll(lm)
    assert set(sizes[1]) == {1} and max(sizes[3]) == 3 and sum(sizes[3]) == sum(sizes[1])


def test_the_checkpoint_names_its_base_model(tmp_path, models):
    from steering.methods import get_method
    from steering.training.run import TrainSettings

    base = checkpoints.load(None, str(BASE), device="cpu").base
    model = get_method("reft").load_on(base, CKPTS / "reft")
    settings = TrainSettings(model_name=str(BASE), dataset_name="BoolQ", method="reft")
    get_method("reft").save(model, tmp_path / "ckpt", settings)
    lm = SteeringLM(checkpoint=str(tmp_path / "ckpt"))  # no pretrained: the recorded base
    assert lm.loaded.base_model == str(BASE) and lm.loaded.method == "reft"
    # the re-saved rotation went through the orthogonal parametrization and back: equal up
    # to float rounding (1e-7 relative, seen on some CPUs), not bit for bit
    assert ll(lm) == pytest.approx(ll(bridge("reft", models)), rel=1e-5)


def run_cli(args, capsys) -> tuple[int, str]:
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


def test_the_command_line_hands_over_to_lm_evals_with_our_model(task_dir, models, tmp_path):
    import subprocess

    args = [
        *("--model", "steering", "--model_args"),
        f"checkpoint={CKPTS / 'vector'},pretrained={models / 'tiny-llama'}",
        *("--tasks", "arc_challenge_local", "--include_path", task_dir, "--limit", "2"),
        *("--batch_size", "2", "--output_path", tmp_path / "out", "--device", "cpu"),
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "steering.lm_eval", *map(str, args)],
        env=cpu_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (written,) = (tmp_path / "out").rglob("results_*.json")
    results = json.loads(written.read_text())
    assert results["results"]["arc_challenge_local"]["sample_len"] == 2
    info = results["config"]["steering"]
    assert info["method"] == "steering" and info["checkpoint"] == str(CKPTS / "vector")
    assert info["checkpoint_info"]["steering"]["kind"] == "vector"


def test_bad_input_is_one_line_and_exit_2(task_dir, models, tmp_path, capsys, monkeypatch):
    run = ["--model", "steering", "--tasks", "arc_challenge_local", "--include_path", task_dir]
    other = f"checkpoint={CKPTS / 'lora'},pretrained={models / 'tiny-llama'}"
    code, err = run_cli([*run, "--model_args", other], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "'base'" in err and "tiny-llama" in err and "was trained on base model" in err
    (tmp_path / "empty").mkdir()
    code, err = run_cli([*run, "--model_args", f"checkpoint={tmp_path / 'empty'}"], capsys)
    assert code == 2 and err.count("\n") == 1 and "is not a checkpoint" in err
    monkeypatch.setitem(sys.modules, "lm_eval", None)  # the extra not installed
    code, err = run_cli([*run, "--model_args", f"pretrained={BASE}"], capsys)
    assert (code, err) == (2, f"error: {INSTALL}\n")
    with pytest.raises(ImportError, match="pip install 'steering\\[lm_eval\\]'"):
        from steering.lm_eval import SteeringLM  # noqa: F401


def test_an_unknown_task_is_one_line_and_exit_2(models, capsys):
    args = ["--model", "steering", "--model_args", f"pretrained={BASE}", "--tasks", "no_such_task"]
    code, err = run_cli(args, capsys)
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("error: Tasks not found: no_such_task") and "ls tasks" in err


def test_the_entry_point_for_lm_evals_that_load_plug_ins_is_the_bridge():
    from importlib.metadata import entry_points

    (found,) = [e for e in entry_points(group="lm_eval.models") if e.name == "steering"]
    assert found.load() is SteeringLM
    assert lm_eval.api.registry.get_model("steering") is SteeringLM  # registered on import
