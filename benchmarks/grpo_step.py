"""Benchmark: where a GRPO optimizer step's time goes, for steering and LoRA on the real model.

    python benchmarks/grpo_step.py --arc-dir data/ARC_Challenge [--model DIR
        --methods steering lora --bs 4 --num-generations 4 --max-completion-length 32 --steps 3]

GRPO as ``scripts/train.py --objective grpo`` runs it (``steering/training/grpo.py``) on real
ARC-Challenge training rows with the task's own rewards, for post-block steering (r=8 SiLU)
and LoRA r=8, each built by its method of the registry from a fresh load of the base. One
optimizer step samples ``--num-generations`` completions of ``bs x 4 / G`` prompts in one
``generate`` call (the rollouts), scores them, and runs 4 micro-batches of forward and
backward over prompt + completion. Reported per method, over the steps after the first (the
warm-up): seconds per optimizer step and per hour, the rollouts' seconds and completion
tokens per second (tokens generated until each row ends), the rewards' seconds, and the rest
(forward, backward, optimizer). Writes benchmarks/results/grpo_step_<cpu|gpu>_smollm2.json.
"""

import argparse
import statistics
import time

import harness
import torch
from logits_step import add_real_model_arguments, require_model

METHODS = ("steering", "lora")


def timed(obj, name: str, into: list[float]) -> None:
    """Wrap ``obj.name`` so that each call's seconds go to ``into``."""
    original = getattr(obj, name)

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            into.append(time.perf_counter() - start)

    setattr(obj, name, wrapper)


def run_method(method_name: str, a, rows, tokenizer, chat: bool) -> dict:
    import json

    from datasets import Dataset

    from steering.data import encode_prompt
    from steering.loading.loader import load_base_model
    from steering.methods import get_method
    from steering.tasks import get_task
    from steering.tasks.rewards import for_trl
    from steering.training.grpo import grpo_arguments
    from steering.training.grpo_settings import GRAD_ACCUM, GRPOSettings
    from steering.training.grpo_trainer import build_trainer
    from steering.training.run import TrainSettings

    task = get_task("ARC_Challenge")
    method = get_method(method_name)
    s = TrainSettings(
        model_name=str(a.model), dataset_name=task.name, method=method_name, bs=a.bs, lr=1e-3
    )
    g = GRPOSettings(
        num_generations=a.num_generations,
        max_completion_length=a.max_completion_length,
        max_steps=a.steps,
    )
    torch.manual_seed(0)
    model = method.build(load_base_model(str(a.model), a.dtype, a.device), s.options)
    data = Dataset.from_dict(
        {
            "prompt": [task.prompt(r) for r in rows],
            "label": [json.dumps(task.label(r)) for r in rows],
        }
    )
    rewards, weights = for_trl(task)
    trainer = build_trainer(
        model,
        tokenizer,
        data,
        grpo_arguments(s, g, str(a.work), torch.device(a.device), weights),
        g.max_prompt_length,
        rewards=rewards,
        encode=lambda text: encode_prompt(tokenizer, text, chat),
    )
    rollouts, scoring = [], []
    timed(trainer, "_generate", rollouts)
    timed(trainer, "_calculate_rewards", scoring)
    start = time.perf_counter()
    trainer.train()
    total = time.perf_counter() - start
    logs = [h for h in trainer.state.log_history if "step_time" in h]
    completions = a.bs * GRAD_ACCUM  # per optimizer step, one generation batch
    new_tokens = [h["completions/mean_length"] * completions for h in logs]
    # the first step pays the warm-up; the figures are the mean over the rest
    steps = [h["step_time"] for h in logs][1:] or [h["step_time"] for h in logs]
    gen = rollouts[1:] or rollouts
    toks = new_tokens[1:] or new_tokens
    step_s = statistics.mean(steps)
    gen_s = statistics.mean(gen)
    reward_s = statistics.mean(scoring[1:] or scoring)
    return {
        "method": method_name,
        "trainable": method.trainable_parameters(model),
        "step_s": round(step_s, 3),
        "steps_per_hour": round(3600 / step_s, 1),
        "rollout_s": round(gen_s, 3),
        "rollout_share": round(gen_s / step_s, 3),
        "rollout_tokens_per_s": round(statistics.mean(toks) / gen_s, 2),
        "completion_tokens_per_step": round(statistics.mean(toks), 1),
        "rewards_s": round(reward_s, 4),
        "rest_s": round(step_s - gen_s - reward_s, 3),
        "steps_timed": len(steps),
        "total_s": round(total, 2),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_real_model_arguments(p)
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--bs", type=int, default=4)
    p.add_argument("--num-generations", type=int, default=4)
    p.add_argument("--max-completion-length", type=int, default=32)
    p.add_argument("--steps", type=int, default=3, help="optimizer steps (the first: warm-up)")
    p.add_argument("--rows", type=int, default=64, help="training rows to draw prompts from")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--device", default=harness.default_device())
    p.add_argument("--out", default=None)
    a = p.parse_args()
    require_model(a.model)
    import json
    import tempfile

    from steering.architectures import uses_chat_template
    from steering.loading.loader import load_tokenizer
    from steering.tasks import get_task

    rows = list(get_task("ARC_Challenge").load(data_dir=str(a.arc_dir))["train"])[: a.rows]
    tokenizer = load_tokenizer(str(a.model))
    model_type = json.loads((a.model / "config.json").read_text())["model_type"]
    chat = uses_chat_template(model_type)
    with tempfile.TemporaryDirectory(prefix="grpo-bench-") as work:
        a.work = work
        out = [run_method(m, a, rows, tokenizer, chat) for m in a.methods]
    harness.print_table(
        out, ["method", "step_s", "rollout_s", "rollout_tokens_per_s", "rewards_s", "rest_s"]
    )
    setting = {
        k: getattr(a, k)
        for k in ("bs", "num_generations", "max_completion_length", "steps", "rows", "dtype")
    }
    setting |= {"model": str(a.model), "arc_dir": str(a.arc_dir), "device": a.device}
    harness.write_result(
        harness.result_path(a.out, "grpo_step", a.device, "smollm2"),
        "Where does a GRPO step's time go (rollouts, rewards, forward and backward), for "
        "steering and LoRA on the real model?",
        setting,
        out,
    )


if __name__ == "__main__":
    main()
