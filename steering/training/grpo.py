"""Reinforcement learning of any method with TRL's ``GRPOTrainer``: the official GSM8K-GRPO
path (PROTOCOL.md section 8).

Each step samples G completions of every prompt from the policy (the method's model, its
intervention active), scores them with the reward functions, and updates the trainable
tensors on the group-relative advantage

    A_i = (r_i - mean_G r) / (std_G r + 1e-4),    r_i = sum_f w_f * reward_f(completion_i)

through the clipped objective min(rho_t A_i, clip(rho_t, 1 - eps, 1 + eps) A_i) over the
completion tokens t, rho_t = pi(t) / pi_old(t) (loss "dapo": the sum over every completion
token of the batch over their count; beta 0: no reference model, no KL term).

The official run used TRL 0.25.1; this package runs a current TRL and sets every value the
official run took from 0.25.1's defaults explicitly (``OFFICIAL``), so a changed default
cannot move it. Two of TRL's steps are ours, to keep what reaches the model as the official
run fed it and to run every method (``steering/training/grpo_trainer.py``): how prompts are
tokenized and cut, and the completion log-probabilities from the method's own forward.

With ``--save-steps N`` a run writes a resume checkpoint every N optimizer steps, as a
supervised run does (``steering/training/resume.py``): the trainable tensors alone (whatever
the method), the optimizer, scheduler, RNG and trainer state; the same command resumes from
the newest complete one.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from steering.tasks.rewards import OFFICIAL as OFFICIAL_REWARDS
from steering.tasks.rewards import OFFICIAL_WEIGHTS, default_weights
from steering.training.grpo_settings import GRAD_ACCUM
from steering.training.grpo_trainer import build_trainer

# GRPOConfig values of the official run (PROTOCOL.md section 8). The first group is what its
# train.py sets; the second what it took from TRL 0.25.1's defaults.
OFFICIAL: dict[str, Any] = {
    "gradient_accumulation_steps": GRAD_ACCUM,
    "lr_scheduler_type": "cosine_with_min_lr",
    "lr_scheduler_kwargs": {"min_lr_rate": 0.1},
    "num_train_epochs": 1,
    "logging_steps": 1,
    "gradient_checkpointing": False,
    "use_vllm": False,
    "reward_weights": list(OFFICIAL_WEIGHTS),
    # TRL 0.25.1's defaults
    "beta": 0.0,
    "loss_type": "dapo",
    "scale_rewards": "group",
    "epsilon": 0.2,
    "num_iterations": 1,
    "temperature": 1.0,
    "top_p": 1.0,
    "top_k": 0,  # 0.25.1's None; both mean no top-k cut
    "warmup_steps": 0,
    "mask_truncated_completions": False,
    "importance_sampling_level": "token",
}


def grpo_arguments(s, g, output_dir: str, device: torch.device, reward_weights=None):
    """The run's ``GRPOConfig``: ``OFFICIAL`` plus the run's flags (``reward_weights``: for
    rewards other than the official pair; ``s.save_steps``: resume checkpoints into
    ``output_dir``). bf16 autocast as the official run on a GPU; on the CPU none (TRL refuses
    bf16 there)."""
    import dataclasses

    from trl import GRPOConfig

    from steering.training import resume
    from steering.training.trainer import one_device_per_process

    official = dict(OFFICIAL)
    if reward_weights is not None:
        official["reward_weights"] = list(reward_weights)
    if "activation_checkpointing" in {f.name for f in dataclasses.fields(GRPOConfig)}:
        # transformers >= 5.2x's name; the old one stays a mirror of it
        official["activation_checkpointing"] = official.pop("gradient_checkpointing")
    return one_device_per_process(
        GRPOConfig(
            output_dir=output_dir,
            **official,
            learning_rate=s.lr,
            per_device_train_batch_size=s.bs,
            max_steps=g.max_steps,
            num_generations=g.num_generations,
            max_completion_length=g.max_completion_length,
            seed=s.seed,
            data_seed=s.seed,
            bf16=device.type == "cuda",
            use_cpu=device.type == "cpu",
            save_strategy="steps" if s.save_steps else "no",
            save_steps=s.save_steps or 500,  # unused when save_strategy is "no"
            save_total_limit=resume.KEEP,
            report_to=["wandb"] if s.wandb else "none",
            disable_tqdm=not s.progress,
            dataloader_num_workers=0,
        )
    )


def train_grpo(s, g) -> dict[str, Any]:
    """One GRPO run of ``s.method`` (``s``: ``TrainSettings``, ``g``: ``GRPOSettings``): on
    GSM8K-GRPO the official path; on any other task its own prompts (tokenized as evaluation
    tokenizes them) and the rewards of its parsers (``steering.tasks.rewards.for_trl``).
    Returns a summary with the paths it wrote, as ``train`` does."""
    import dataclasses
    import json
    import math
    import tempfile

    from datasets import Dataset
    from transformers import set_seed

    from steering.architectures import uses_chat_template
    from steering.data import chat_text, encode_prompt
    from steering.loading.loader import (
        load_base_model,
        load_model_type,
        load_tokenizer,
        pick_device,
    )
    from steering.methods import get_method
    from steering.runtime import gpu_lease, storage
    from steering.runtime.precision import apply as apply_precision
    from steering.tasks import get_task
    from steering.tasks.gsm8k_grpo import GSM8KGRPO
    from steering.tasks.rewards import for_trl
    from steering.training import memory, resume
    from steering.training.run import evaluate_trained, output_dirs, save_outputs
    from steering.training.trainer import FiniteGradients, check_trainer_device

    official = s.dataset_name == "GSM8K-GRPO"
    task = GSM8KGRPO(g.system_prompt) if official else get_task(s.dataset_name)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    main = int(os.environ.get("RANK", "0")) == 0
    g.check(s.model_name, s.bs, world, s.dataset_name)
    if s.sharding != "none":
        raise ValueError("--sharding fsdp is not supported with GRPO; drop --sharding")
    for d in output_dirs(s):
        storage.probe(d)
    splits = task.load(data_dir=s.data_dir)
    rows = splits["train"]
    if s.max_train_samples:
        rows = rows.select(range(min(s.max_train_samples, len(rows))))
    prompts_per_batch = s.bs * world * GRAD_ACCUM // g.num_generations
    if len(rows) < prompts_per_batch:
        raise ValueError(
            f"{len(rows)} training rows, fewer than the {prompts_per_batch} prompts of one "
            f"generation batch (--bs {s.bs} x {world} x {GRAD_ACCUM} / --num-generations "
            f"{g.num_generations}): GRPO would take no step; use more rows or a smaller --bs"
        )
    tokenizer = load_tokenizer(s.model_name)
    if official:
        if tokenizer.chat_template is None:
            raise ValueError(
                f"{s.model_name}'s tokenizer has no chat template; GSM8K-GRPO asks every model "
                "as a chat (PROTOCOL.md section 8): use an instruct model"
            )
        chat, encode = True, None  # the official tokenization (Trainer._tokenize_prompts)
        columns = {
            "prompt": [chat_text(tokenizer, task.prompt(r), system=g.system_prompt) for r in rows],
            "solution": [task.solution(r) for r in rows],
        }
        named = {**default_weights(s.dataset_name), **g.weights}  # format, accuracy
        rewards, weights = OFFICIAL_REWARDS, list(named.values())
    else:  # the task's prompts as evaluation feeds them; the label as JSON (any type)
        chat = uses_chat_template(load_model_type(s.model_name) or "")

        def encode(text: str) -> list[int]:
            return encode_prompt(tokenizer, text, chat, s.single_bos)

        columns = {
            "prompt": [task.prompt(r) for r in rows],
            "label": [json.dumps(task.label(r)) for r in rows],
        }
        rewards, weights = for_trl(task, g.weights)
    dataset = Dataset.from_dict(columns)
    device = pick_device(s.device)
    check_trainer_device(device, world)
    if main:
        gpu_lease.say_if_on_cpu(device.type, "trains")
    apply_precision(s.precision, device)
    plan = memory.plan_training(s, task, device=device, grpo=g)  # refuses what cannot fit
    method = get_method(s.method)
    base = load_base_model(s.model_name, method.base_dtype(s.precision), s.device)
    set_seed(s.seed)
    model = method.build(base, s.options, s.steering, s.precision)
    n_trainable = method.trainable_parameters(model)
    share = n_trainable / method.base_parameters(model)
    if main:
        print(f"trainable params: {n_trainable:,} || trainable: {100 * share:.4f}%", flush=True)
    encoded = encode or (lambda p: tokenizer(p, add_special_tokens=False).input_ids)
    cut = sum(len(encoded(p)) > g.max_prompt_length for p in dataset["prompt"])
    if cut and main:
        print(
            f"note: {cut} prompt(s) longer than --max-prompt-length {g.max_prompt_length} "
            "lose their start",
            flush=True,
        )
    extras = method.trainer_extras(model, s)
    resume_dir = s.resume_path()
    fingerprint = resume.fingerprint({**s.to_dict(), "grpo": dataclasses.asdict(g)}, world)
    start = resume.prepare(resume_dir, fingerprint, main, saving=s.save_steps > 0)
    if start is not None and main:
        print(f"resuming from {start}", flush=True)
    with tempfile.TemporaryDirectory(prefix="steering-grpo-") as tmp:
        out = str(resume_dir) if s.save_steps else tmp
        trainer = build_trainer(
            model,
            tokenizer,
            dataset,
            grpo_arguments(s, g, out, device, weights),
            g.max_prompt_length,
            callbacks=[
                *extras.get("callbacks", []),
                FiniteGradients(),
                resume.CompletionMarker(),
            ],
            rewards=rewards,
            encode=encode,
            prompt_positions=method.prompt_positions,
            optimizers=extras.get("optimizers", (None, None)),
        )
        result = trainer.train(resume_from_checkpoint=str(start) if start else None)
    if not trainer.is_world_process_zero():
        return {"main_process": False, "optimizer_steps": trainer.state.global_step}
    history = trainer.state.log_history
    reward_log = [
        {k: h[k] for k in h if k == "step" or k.startswith(("reward", "rewards/"))}
        for h in history
        if "reward" in h
    ]
    summary = {
        "settings": s.to_dict(),
        "objective": "grpo",
        "grpo": dataclasses.asdict(g),
        "grpo_config": {**OFFICIAL, "reward_weights": weights},
        "rewards": [f.__name__ for f in rewards],
        "data": {"chat_template": chat, "single_bos": s.single_bos},
        "variant": s.variant(),
        "method": s.method,
        "trainable_parameters": n_trainable,
        "trainable_share": share,
        "train_examples": len(rows),
        "batch_order": "official",  # TRL's shuffled prompt sampler, as the official run's
        "prompts_cut": cut,
        "optimizer_steps": trainer.state.global_step,
        "train_loss": result.training_loss if math.isfinite(result.training_loss) else None,
        "loss_history": [(h["step"], h["loss"]) for h in history if "loss" in h],
        "reward_history": reward_log,
        "resumed_from_step": resume.step(start) if start else None,
        "memory_estimate": dataclasses.asdict(plan) if plan else None,
        "train_runtime_s": result.metrics.get("train_runtime"),
        "checkpoint": str(s.checkpoint_dir()),
        "world_size": world,
        "main_process": True,
    }
    log = "".join(json.dumps(h) + "\n" for h in history)
    save_outputs(method, model, s, summary, log)
    resume.finish(resume_dir, s.keep_checkpoints)
    if s.do_eval:
        evaluate_trained(model, tokenizer, task, splits, s, chat, summary)
    return summary
