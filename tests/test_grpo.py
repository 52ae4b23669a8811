"""GSM8K-GRPO, the official command line's reinforcement-learning path (PROTOCOL.md section 8):
the two rewards on every real gold answer and a table of wrong ones, the resolved GRPOConfig
against the protocol's table, one-line refusals before any model loads, a GRPO step that
changes the method's trainable tensors alone, and train.py -> inference.py end to end."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from steering.config import SteeringConfig
from steering.loading.tiny import save_tiny_model
from steering.tasks import get_task
from steering.tasks.gsm8k_grpo import SYSTEM_PROMPT
from steering.tasks.rewards import accuracy_reward, format_reward
from steering.training.grpo_settings import GRPOSettings
from tests.conftest import cpu_env

ROOT = Path(__file__).resolve().parent.parent
TASK = get_task("GSM8K-GRPO")


def test_the_default_system_prompt_is_the_official_text():
    assert SYSTEM_PROMPT == (
        "You are a helpful AI Assistant that provides well-reasoned and detailed responses. You "
        "first think about the reasoning process as an internal monologue and then provide the "
        "user with the answer. Respond in the following format: <think>\n...\n</think>\n"
        "<answer>\n...\n</answer>"
    )


def test_every_real_gold_answer_earns_both_rewards():
    rows = [json.loads(line) for line in (ROOT / "data/GSM8K/test.jsonl").open()]
    gold = [TASK.completion(r) for r in rows]
    solutions = [TASK.solution(r) for r in rows]
    assert format_reward(gold) == [1.0] * len(rows)
    assert accuracy_reward(gold, solutions) == [1.0] * len(rows)
    assert all(TASK.score(g, TASK.label(r)) for g, r in zip(gold[:50], rows[:50], strict=True))


@pytest.mark.parametrize(
    "completion, solution, fmt, acc",
    [
        ("<think>\nx\n</think>\n<answer>\n\\boxed{18}\n</answer>", "18", 1.0, 1.0),
        ("<think>\nx\n</think>\n<answer>\n\\boxed{17}\n</answer>", "18", 1.0, 0.0),
        ("<think>x</think><answer>\\boxed{18}</answer>", "18", 0.0, 1.0),  # no newlines
        ("\n</think>\n\n</think>\n\\boxed{18}", "18", 0.0, 1.0),  # closed twice
        ("The answer is 18", "18", 0.0, 0.0),  # no boxed answer: no anchor is tried
        ("$18$ and then \\boxed{18}", "18", 0.0, 1.0),  # the boxed answer comes first
        ("\\boxed{1,234}", "1,234", 0.0, 1.0),
        ("\\boxed{0.5}", "\\frac{1}{2}", 0.0, 1.0),
        ("", "18", 0.0, 0.0),
    ],
)
def test_rewards_table(completion, solution, fmt, acc):
    assert format_reward([completion]) == [fmt]
    assert accuracy_reward([completion], [solution]) == [acc]


def test_a_solution_that_parses_to_nothing_has_no_reward():
    assert accuracy_reward(["\\boxed{18}"], ["}{"]) == [None]


def test_the_resolved_config_is_the_protocols():
    """PROTOCOL.md section 8's GRPOConfig, whatever TRL's current defaults are."""
    from steering.training.grpo import grpo_arguments
    from steering.training.run import TrainSettings

    s = TrainSettings(model_name="m", dataset_name="GSM8K-GRPO", lr=3e-5, bs=3)
    args = grpo_arguments(s, GRPOSettings(), "out", torch.device("cpu"))
    protocol = {
        "per_device_train_batch_size": 3,
        "gradient_accumulation_steps": 4,
        "learning_rate": 3e-5,
        "lr_scheduler_type": "cosine_with_min_lr",
        "lr_scheduler_kwargs": {"min_lr_rate": 0.1},
        "num_train_epochs": 1,
        "max_steps": 1500,
        "logging_steps": 1,
        "use_vllm": False,
        "seed": 42,
        "gradient_checkpointing": False,
        "reward_weights": [1.0, 2.0],
        "num_generations": 6,
        "max_completion_length": 1024,
        "beta": 0.0,
        "loss_type": "dapo",
        "scale_rewards": "group",
        "epsilon": 0.2,
        "num_iterations": 1,
        "temperature": 1.0,
        "top_p": 1.0,
        "warmup_steps": 0,
    }
    assert {k: getattr(args, k) for k in protocol} == protocol
    assert args.top_k in (0, None)  # no top-k cut either way
    assert args.epsilon_high in (None, 0.2)  # the clip is symmetric
    assert args.bf16 is False  # on the CPU; bf16 autocast as the official run on a GPU


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    ws = tmp_path_factory.mktemp("grpo")
    save_tiny_model(ws / "tiny", "llama", hidden_size=32, num_layers=2)
    return ws


def train_py(*args, cwd):
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts/train.py"), *map(str, args), "--no-progress"],
        cwd=cwd,
        env=cpu_env(WANDB_MODE="disabled"),
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--dataset-name", "GSM8K", "--num-generations", "4"], "--num-generations applies to"),
        (["--dataset-name", "GSM8K-GRPO", "--num-generations", "5", "--bs", "2"], "divide"),
        (
            [
                "--dataset-name",
                "GSM8K-GRPO",
                "--max-completion-length",
                "9999",
                "--bs",
                "2",
                "--num-generations",
                "2",
            ],
            "holds",
        ),
        (["--dataset-name", "GSM8K-GRPO", "--num-generations", "1"], ">= 2"),
        (
            ["--dataset-name", "BoolQ", "--objective", "grpo", "--num-generations", "4"]
            + ["--reward-weights", "bogus=1"],
            "no reward bogus on BoolQ; its rewards: format, accuracy, accuracy_strict",
        ),
    ],
)
def test_bad_grpo_input_is_one_line_before_any_model_loads(workspace, tmp_path, flags, message):
    done = train_py("--model-name", workspace / "tiny", *flags, "--output-dir", "out", cwd=tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], lines
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "dataset, items, message",
    [
        ("BoolQ", ["accuracy"], "expected NAME=WEIGHT"),
        ("BoolQ", ["accuracy=x"], "expected NAME=WEIGHT"),
        ("BoolQ", ["=1"], "expected NAME=WEIGHT"),
        ("BoolQ", ["accuracy=-1"], "must be >= 0"),
        ("BoolQ", ["format=0", "accuracy=0"], "every weight is 0"),
        ("GSM8K-GRPO", ["accuracy_strict=1"], "its rewards: format, accuracy"),
    ],
)
def test_bad_reward_weights(dataset, items, message):
    from steering.training.grpo_settings import GRPOSettings, check_rewards, parse_weights

    with pytest.raises(ValueError, match=message):
        check_rewards(dataset, GRPOSettings(reward_weights=parse_weights(items)).weights)


def test_reward_weights_over_the_defaults():
    from steering.tasks.rewards import default_weights, for_trl
    from steering.training.grpo_settings import parse_weights

    assert default_weights("GSM8K-GRPO") == {"format": 1.0, "accuracy": 2.0}
    weights = dict(parse_weights(["format=0", "accuracy_strict=0.5"]))
    funcs, w = for_trl(get_task("BoolQ"), weights)
    assert [f.__name__ for f in funcs] == ["format", "accuracy", "accuracy_strict"]
    assert w == [0.0, 2.0, 0.5]


METHODS = {  # name -> (method, its options, the steering config)
    "steering": ("steering", {}, SteeringConfig()),
    "vectors": ("steering", {}, SteeringConfig(kind="vector")),
    "submodules": ("steering", {}, SteeringConfig(sites=("attn", "mlp"))),
    "last-token": ("steering", {}, SteeringConfig(positions="last")),
    "lora": ("lora", {}, SteeringConfig()),
    "full": ("full", {}, SteeringConfig()),
    "reft": ("reft", {}, SteeringConfig()),
    "joint": ("joint", {}, SteeringConfig()),
}


@pytest.mark.parametrize("name", METHODS)
def test_a_grpo_step_changes_the_methods_trainable_tensors_alone(workspace, name):
    """Every method is a GRPO policy: rollouts through its generate (sampled; last-token
    steering exactly), log-probabilities through its forward (ReFT told where each prompt
    ends), its own optimizer groups and callbacks; a step moves its trainable tensors only."""
    from datasets import Dataset

    from steering.data import chat_text
    from steering.loading.loader import load_base_model, load_tokenizer
    from steering.methods import get_method
    from steering.training.grpo import grpo_arguments
    from steering.training.grpo_trainer import build_trainer
    from steering.training.run import TrainSettings

    method_name, options, config = METHODS[name]
    method = get_method(method_name)
    tokenizer = load_tokenizer(str(workspace / "tiny"))
    base = load_base_model(str(workspace / "tiny"), "float32", "cpu")
    s = TrainSettings(
        model_name=str(workspace / "tiny"),
        dataset_name="GSM8K-GRPO",
        method=method_name,
        options=options,
        steering=config,
        bs=2,
        lr=0.05,
    )
    torch.manual_seed(0)
    model = method.build(base, s.options, config, "fp32")
    for p in (p for p in model.parameters() if p.requires_grad and not p.any()):
        torch.nn.init.normal_(p, std=0.1)  # W_up (and LoRA's B) start at zero: a gradient path
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    # a generation batch of 2 x 4 completions: 4 prompts x 2 generations
    questions = ["Tom has 3 apples and buys 4 more. How many?", "2 + 2?", "3 + 3?", "1 + 5?"]
    data = Dataset.from_dict(
        {
            "prompt": [chat_text(tokenizer, q, system=SYSTEM_PROMPT) for q in questions],
            "solution": ["7", "4", "6", "6"],
        }
    )
    g = GRPOSettings(num_generations=2, max_completion_length=6, max_steps=1)
    args = grpo_arguments(s, g, str(workspace / "t"), torch.device("cpu"))

    def distinct(completions, **kwargs):  # varies within a group, so advantages are not 0
        return [len(set(c)) / 10 for c in completions]

    extras = method.trainer_extras(model, s)
    trainer = build_trainer(
        model,
        tokenizer,
        data,
        args,
        512,
        callbacks=extras.get("callbacks", []),
        rewards=(distinct, format_reward),
        prompt_positions=method.prompt_positions,
        optimizers=extras.get("optimizers", (None, None)),
    )
    trainer.train()
    after = dict(model.named_parameters())
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert changed and changed <= trainable
    logged = trainer.state.log_history[0]
    assert {"reward", "rewards/distinct/mean", "rewards/format_reward/mean"} <= set(logged)
    assert "completions/mean_length" in logged and "completions/clipped_ratio" in logged
    if name == "steering":
        # prompts reach the model as the official run fed them: no added special tokens, cut
        # from the left to --max-prompt-length
        full = tokenizer(data["prompt"][0], add_special_tokens=False).input_ids
        assert trainer._tokenize_prompts(data["prompt"][:1])[0] == [full]
        trainer.max_prompt_length = 5
        assert trainer._tokenize_prompts(data["prompt"][:1])[0] == [full[-5:]]


def test_train_then_inference(workspace, tmp_path):
    from steering.tasks.files import write_prepared

    gsm8k = get_task("GSM8K")
    data = tmp_path / "gsm8k"
    write_prepared(gsm8k, gsm8k.make_splits(gsm8k.synthetic(seed=0, scale=0.01)), data, {})
    common = ["--dataset-name", "GSM8K-GRPO", "--data-dir", data, "--max-eval-samples", "1"]
    done = train_py(
        "--model-name", workspace / "tiny", *common, "--bs", "2", "--num-generations", "2",
        "--max-completion-length", "6", "--max-steps", "2", "--max-train-samples", "4",
        "--do-eval", "--test-only", "--output-dir", "run", "--lr", "0.01",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "training.json").read_text())
    assert summary["objective"] == "grpo" and summary["optimizer_steps"] == 2
    assert summary["grpo"]["num_generations"] == 2 and summary["grpo_config"]["beta"] == 0.0
    assert [r["step"] for r in summary["reward_history"]] == [1, 2]
    trained = (tmp_path / "run" / "test.json").read_text().splitlines()
    assert len(trained) == 1
    done = subprocess.run(
        [
            sys.executable, str(ROOT / "scripts/inference.py"), "--model-name",
            str(workspace / "tiny"), *map(str, common), "--ckpt-path", "run", "--output-dir",
            "eval", "--no-progress",
        ],
        cwd=tmp_path, env=cpu_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    # the saved checkpoint gives the trained model's greedy outputs
    assert (tmp_path / "eval" / "test.json").read_text().splitlines() == trained
    metrics = json.loads((tmp_path / "eval" / "test.metrics.json").read_text())
    assert metrics["max_new_tokens"] == 1024 and metrics["chat_template"] is True


# --- every task under --objective grpo ---------------------------------------------------------
def gold_rows(name: str) -> list[dict]:
    """A task's real rows from data/ (ListOps: generated, it ships none)."""
    from steering.tasks import TASKS

    task = TASKS[name]
    files = sorted((ROOT / "data" / name).glob("*.jsonl"))
    rows = [json.loads(line) for f in files for line in f.open()]
    rows = rows or list(task.synthetic(seed=0, scale=0.05)["train"])
    return [r for r in rows if task.check_row(r) is None]


@pytest.mark.parametrize(
    "name", ["BoolQ", "Winogrande", "ListOps", "GSM8K", "ARC_Challenge", "AQuA"]
)
def test_every_gold_completion_earns_the_task_rewards(name):
    """Gold completions: format 1.0 and strict accuracy 1.0 on every real row; the official
    accuracy is the official parser's verdict, quirks included (GSM8K's long numbers)."""
    from steering.tasks import TASKS
    from steering.tasks.rewards import accuracy, accuracy_strict, format_of

    task = TASKS[name]
    rows = gold_rows(name)
    gold = [(task.completion(r), task.label(r)) for r in rows]
    assert {format_of(task, "", c, lab) for c, lab in gold} == {1.0}
    assert {accuracy_strict(task, "", c, lab) for c, lab in gold} == {1.0}
    assert [accuracy(task, "", c, lab) for c, lab in gold] == [
        float(task.score(c, lab)) for c, lab in gold
    ]


@pytest.mark.parametrize(
    "name, completion, label, fmt, acc",
    [
        ("BoolQ", "Answer: False.", "True", 1.0, 0.0),
        ("BoolQ", "I think so", "True", 0.0, 0.0),
        ("Winogrande", "Answer: Option2.", 1, 1.0, 0.0),
        ("ListOps", "<answer>7</answer>", "3", 1.0, 0.0),
        ("ListOps", "3", "3", 0.0, 0.0),
        ("GSM8K", "so 12\nAnswer: 13", 12.0, 1.0, 0.0),
        ("GSM8K", "it is 12", 12.0, 0.0, 1.0),  # no answer line: the last number counts
        ("ARC_Challenge", "Answer: (B) a rock.", "A", 1.0, 0.0),
        ("AQuA", "Answer: C.", "D", 1.0, 0.0),
        ("AQuA", "", "D", 0.0, 0.0),
    ],
)
def test_task_rewards_table(name, completion, label, fmt, acc):
    from steering.tasks import TASKS
    from steering.tasks.rewards import accuracy, format_of

    task = TASKS[name]
    assert format_of(task, "", completion, label) == fmt
    assert accuracy(task, "", completion, label) == acc


def test_the_task_rewards_in_trls_form():
    from steering.tasks import TASKS
    from steering.tasks.rewards import for_trl

    funcs, weights = for_trl(TASKS["Winogrande"], {"accuracy": 3.0})
    assert [f.__name__ for f in funcs] == ["format", "accuracy", "accuracy_strict"]
    assert weights == [1.0, 3.0, 0.0]
    out = [
        f(prompts=["p", "p"], completions=["Answer: Option1.", "x"], label=["1", "1"])
        for f in funcs
    ]
    assert out == [[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]]
    with pytest.raises(ValueError, match="unknown reward"):
        for_trl(TASKS["BoolQ"], {"fluency": 1.0})


def test_grpo_on_a_task_of_its_own(workspace, tmp_path):
    """--objective grpo on BoolQ: the task's prompts, its rewards logged per step, the
    checkpoint evaluated like any other; its bad flags refused in one line."""
    from steering.tasks.files import write_prepared

    boolq = get_task("BoolQ")
    data = tmp_path / "boolq"
    write_prepared(boolq, boolq.make_splits(boolq.synthetic(seed=0, scale=0.02)), data, {})
    done = train_py(
        "--model-name", workspace / "tiny", "--dataset-name", "BoolQ", "--objective", "grpo",
        "--data-dir", data, "--bs", "2", "--num-generations", "2", "--max-steps", "1",
        "--max-train-samples", "4", "--do-eval", "--test-only", "--max-eval-samples", "2",
        "--reward-weights", "format=0.5", "--output-dir", "run", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "training.json").read_text())
    assert summary["objective"] == "grpo" and summary["batch_order"] == "official"
    assert summary["grpo_config"]["reward_weights"] == [0.5, 2.0, 0.0]
    assert summary["memory_estimate"]["trainable_states"] == 16 * summary["trainable_parameters"]
    # the per-step log: each reward's mean, completion lengths, the clipped ratio
    logged = json.loads((tmp_path / "run" / "train_log.jsonl").read_text().splitlines()[0])
    for key in ("rewards/format/mean", "completions/mean_length", "clip_ratio/region_mean"):
        assert key in logged, sorted(logged)
    assert summary["rewards"] == ["format", "accuracy", "accuracy_strict"]
    assert summary["grpo"]["max_completion_length"] == boolq.max_new_tokens
    assert "rewards/accuracy_strict/mean" in summary["reward_history"][0]
    assert len((tmp_path / "run" / "test.json").read_text().splitlines()) == 2
    # joint adaptation (LoRA and steering together) through its own script
    joint = subprocess.run(
        [sys.executable, str(ROOT / "scripts/train_joint.py"), "--model-name",
         str(workspace / "tiny"), "--dataset-name", "BoolQ", "--objective", "grpo",
         "--data-dir", str(data), "--bs", "2", "--num-generations", "2", "--max-steps", "1",
         "--max-train-samples", "4", "--no-eval", "--lora-rank", "2", "--output-dir", "joint",
         "--no-progress"],
        cwd=tmp_path, env=cpu_env(WANDB_MODE="disabled"), capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert joint.returncode == 0, joint.stderr[-3000:]
    trained = json.loads((tmp_path / "joint" / "training.json").read_text())
    assert (trained["objective"], trained["method"]) == ("grpo", "joint")
    assert (tmp_path / "joint" / "lora" / "adapter_config.json").is_file()
    for flags, message in [
        (["--objective", "grpo", "--system-prompt", "x"], "GSM8K-GRPO only"),
        (["--dataset-name", "GSM8K-GRPO", "--objective", "sft"], "GRPO only"),
    ]:
        flags = flags if "--dataset-name" in flags else ["--dataset-name", "BoolQ", *flags]
        bad = train_py(
            "--model-name", workspace / "tiny", *flags, "--output-dir", "x", cwd=tmp_path
        )
        assert bad.returncode == 2 and message in bad.stderr and bad.stderr.count("\n") == 1


def test_grpo_resume_checkpoints_are_kept_resumed_and_dropped(workspace, tmp_path):
    """--save-steps under GRPO: checkpoints of the trainable tensors alone, with the
    optimizer state; the same command resumes from the newest complete one (which ones count:
    resume.prepare, tests/test_resume.py) and drops the resume directory at the end."""
    import shutil

    from safetensors.torch import load_file

    from steering.tasks.files import write_prepared
    from steering.training import resume
    from steering.training.grpo import train_grpo
    from steering.training.grpo_trainer import TRAINABLE_FILE
    from steering.training.run import TrainSettings

    boolq = get_task("BoolQ")
    data = tmp_path / "boolq"
    write_prepared(boolq, boolq.make_splits(boolq.synthetic(seed=0, scale=0.02)), data, {})
    g = GRPOSettings(num_generations=2, max_completion_length=4, max_steps=4)

    def run(name: str, keep: bool = False) -> dict:
        return train_grpo(
            TrainSettings(
                model_name=str(workspace / "tiny"), dataset_name="BoolQ", data_dir=str(data),
                bs=2, lr=0.05, seed=1, max_train_samples=16, save_steps=2,
                keep_checkpoints=keep, output_dir=str(tmp_path / name), progress=False,
            ),
            g,
        )  # fmt: skip

    straight = run("a", keep=True)
    kept = tmp_path / "a.resume"
    assert sorted(resume.step(p) for p in kept.glob("checkpoint-*")) == [2, 4]
    first = kept / "checkpoint-2"
    assert (first / resume.MARKER).exists() and (first / "optimizer.pt").exists()
    trained = {n for n, t in load_file(first / TRAINABLE_FILE).items()}
    assert trained and all(".steer" in n or "adapter" in n for n in trained), sorted(trained)
    shutil.copytree(kept, tmp_path / "c.resume")
    shutil.rmtree(tmp_path / "c.resume" / "checkpoint-4")
    resumed = run("c")
    assert (resumed["resumed_from_step"], resumed["optimizer_steps"]) == (2, 4)
    assert straight["resumed_from_step"] is None
    assert not (tmp_path / "c.resume").exists()  # done: the resume state is dropped


def test_a_resumed_grpo_run_reproduces_the_uninterrupted_one(workspace, tmp_path):
    """Four GRPO steps straight, and two then two more from the step-2 checkpoint: the same
    trainable tensors at the end (rollouts, rewards and updates continue where they were)."""
    from datasets import Dataset
    from safetensors.torch import load_file

    from steering.loading.loader import load_base_model, load_tokenizer
    from steering.methods import get_method
    from steering.training.grpo import grpo_arguments
    from steering.training.grpo_trainer import TRAINABLE_FILE, build_trainer
    from steering.training.run import TrainSettings

    tokenizer = load_tokenizer(str(workspace / "tiny"))
    questions = ["2 + 2?", "3 + 3?", "1 + 5?", "7 - 2?"] * 4
    data = Dataset.from_dict({"prompt": questions, "solution": ["4", "6", "6", "5"] * 4})

    def distinct(completions, **kwargs):  # varies within a group, so advantages are not 0
        return [len(set(c)) / 10 for c in completions]

    def trainer_in(out: Path, keep_from_step: int | None = None):
        s = TrainSettings(
            model_name=str(workspace / "tiny"), dataset_name="GSM8K-GRPO", bs=2, lr=0.05,
            seed=3, save_steps=2,
        )  # fmt: skip
        g = GRPOSettings(num_generations=2, max_completion_length=5, max_steps=4)
        torch.manual_seed(0)
        model = get_method("steering").build(
            load_base_model(str(workspace / "tiny"), "float32", "cpu"), {}, SteeringConfig(), "fp32"
        )
        for p in (p for p in model.parameters() if p.requires_grad and not p.any()):
            torch.nn.init.normal_(p, std=0.1)  # W_up starts at zero: a gradient path
        args = grpo_arguments(s, g, str(out), torch.device("cpu"), reward_weights=[1.0])
        return build_trainer(model, tokenizer, data, args, 512, rewards=(distinct,))

    trainer_in(tmp_path / "a").train()
    straight = load_file(tmp_path / "a" / "checkpoint-4" / TRAINABLE_FILE)
    halfway = load_file(tmp_path / "a" / "checkpoint-2" / TRAINABLE_FILE)
    assert not all(torch.equal(straight[n], halfway[n]) for n in straight)
    trainer_in(tmp_path / "b").train(resume_from_checkpoint=str(tmp_path / "a" / "checkpoint-2"))
    resumed = load_file(tmp_path / "b" / "checkpoint-4" / TRAINABLE_FILE)
    assert resumed.keys() == straight.keys()
    for name in straight:
        torch.testing.assert_close(resumed[name], straight[name], rtol=1e-5, atol=1e-6)
