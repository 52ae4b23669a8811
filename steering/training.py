"""Training a SteeredModel with HF Trainer under the official defaults (PROTOCOL.md section 2).

``train(settings)`` loads the task data and the base model once, attaches the steering, trains
(lr 9e-4, linear schedule, warmup 0.03, weight decay 0, batch 8 x accumulation 2, per-dataset
epochs, group-by-length batches, seed 42 unless told otherwise), saves the adapter checkpoint
and, with ``do_eval``, evaluates validation and test in the same process.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments, set_seed

from steering import baselines, resume
from steering.architectures import get_architecture
from steering.baselines import METHODS
from steering.config import SteeringConfig
from steering.data import (
    Collator,
    describe_stats,
    tokenize_split,
    truncation_stats,
    uses_chat_template,
)
from steering.io import write_json, write_text
from steering.loader import load_base_model, load_tokenizer, model_short_name, pick_device
from steering.model import SteeredModel
from steering.sampling import EpochSeededLengthGroupedSampler
from steering.tasks import get_task


class NonFiniteLoss(RuntimeError):
    """Training produced a NaN or infinite loss, or NaN or infinite gradients."""


HINT = "lower --lr, or train in --dtype float32"


class FiniteGradients(TrainerCallback):
    """Stops training at the first optimizer step whose gradients are not all finite.

    A finite loss can still give NaN/inf gradients (an overflow in the backward pass of a
    half-precision model); AdamW would then write NaN into every weight it touches and the
    run would go on, reporting a finite loss from a broken model. Runs after gradient
    clipping, before ``optimizer.step()``, with one host sync per step.
    """

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        named = [(n, p.grad) for n, p in model.named_parameters() if p.grad is not None]
        if not named or torch.stack([torch.isfinite(g).all() for _, g in named]).all():
            return
        bad = [n for n, g in named if not torch.isfinite(g).all()]
        raise NonFiniteLoss(
            f"gradients are NaN or infinite at optimizer step {state.global_step + 1} "
            f"(epoch {state.epoch or 0:.2f}) in {len(bad)} of {len(named)} trainable tensors, "
            f"first {bad[0]}; {HINT}"
        )


@dataclass
class TrainSettings:
    """One training run: the official flags plus ours. ``epochs=None`` = the task's epochs."""

    model_name: str
    dataset_name: str
    steering: SteeringConfig = field(default_factory=SteeringConfig)
    method: str = "steering"  # or "lora", "full" (steering/baselines.py), "joint" (joint.py)
    lora_rank: int = 8
    scheduler: str = "linear"  # or "cosine" (the joint default)
    lora_lr: float | None = None  # joint: the LoRA parameter group's lr (default: lr)
    adapter_lr: float | None = None  # joint: the steering adapters' lr (default: lr)
    orthogonal_freq: str | int = "step"  # joint: step | epoch | init | N
    orthogonal_side: str = "input"  # joint: project W_down (input) or W_up (output)
    reft_rank: int = 8  # reft: LoReFT rank
    reft_first_n: int = 0  # reft: intervene on the first n prompt tokens ...
    reft_last_n: int = 1  # ... and on the last n (default: the last prompt token only)
    lr: float = 9e-4
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    epochs: float | None = None
    bs: int = 8
    grad_accum: int = 2
    seed: int = 42
    do_eval: bool = False
    test_only: bool = False
    output_dir: str | None = None
    train_log: str | None = (
        None  # JSON Lines of the Trainer's logs; default <checkpoint>/train_log.jsonl
    )
    data_dir: str | None = None
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    dtype: str = "float32"
    eval_batch_size: int = 16
    wandb: bool = False
    device: str | None = None
    logging_steps: int = 10
    progress: bool = True
    save_steps: int = 0  # checkpoint for resuming every N optimizer steps; 0 = never
    resume_dir: str | None = None  # default: <checkpoint>.resume beside the checkpoint
    keep_checkpoints: bool = False  # keep the resume checkpoints after a successful run
    single_bos: bool = False  # chat path: drop the template's BOS the tokenizer doubles

    def __post_init__(self) -> None:
        checks = [
            ("lr", self.lr > 0, "must be > 0"),
            ("warmup_ratio", 0 <= self.warmup_ratio < 1, "must be in [0, 1)"),
            ("weight_decay", self.weight_decay >= 0, "must be >= 0"),
            ("epochs", self.epochs is None or self.epochs > 0, "must be > 0"),
            ("bs", self.bs >= 1, "must be >= 1"),
            ("grad_accum", self.grad_accum >= 1, "must be >= 1"),
            ("eval_batch_size", self.eval_batch_size >= 1, "must be >= 1"),
            ("save_steps", self.save_steps >= 0, "must be >= 0 (0 = no checkpoints)"),
            (
                "max_train_samples",
                self.max_train_samples is None or self.max_train_samples >= 1,
                "must be >= 1",
            ),
            (
                "max_eval_samples",
                self.max_eval_samples is None or self.max_eval_samples >= 1,
                "must be >= 1",
            ),
        ]
        for name, ok, rule in checks:
            if not ok:
                raise ValueError(f"{name}={getattr(self, name)!r} {rule}")
        if self.test_only and not self.do_eval:
            raise ValueError("--test-only only makes sense with --do-eval")
        if self.method not in METHODS:
            raise ValueError(f"--method {self.method!r} is invalid; choose one of {list(METHODS)}")
        if self.lora_rank < 1:
            raise ValueError(f"lora_rank={self.lora_rank} must be >= 1")
        if self.scheduler not in ("linear", "cosine"):
            raise ValueError(f"--scheduler {self.scheduler!r} is invalid; choose linear or cosine")
        for name in ("lora_lr", "adapter_lr"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise ValueError(f"{name}={getattr(self, name)} must be > 0")
        if self.method == "joint":
            from steering.joint import parse_frequency

            self.orthogonal_freq = parse_frequency(self.orthogonal_freq)
            if self.orthogonal_side not in ("input", "output"):
                raise ValueError(
                    f"--orthogonal-side {self.orthogonal_side!r}: choose input or output"
                )

    def variant(self) -> str:
        if self.method == "lora":
            return f"lora_r{self.lora_rank}"
        if self.method == "full":
            return "full"
        if self.method == "joint":
            return f"joint_lora{self.lora_rank}_{self.steering.variant_name()}"
        if self.method == "reft":
            return f"reft_r{self.reft_rank}_f{self.reft_first_n}_l{self.reft_last_n}"
        return self.steering.variant_name()

    def checkpoint_dir(self) -> Path:
        """``./<dataset>_model/<model>_<variant>/`` as the official code, or ``output_dir``."""
        if self.output_dir:
            return Path(self.output_dir)
        task = get_task(self.dataset_name).name
        return Path(f"{task}_model") / f"{model_short_name(self.model_name)}_{self.variant()}"

    def eval_dir(self) -> Path:
        """``outputs/<dataset>_model/<model>_<variant>/``, or ``output_dir``."""
        return Path(self.output_dir) if self.output_dir else Path("outputs") / self.checkpoint_dir()

    def resume_path(self) -> Path:
        """Where periodic checkpoints go and an interrupted run resumes from."""
        if self.resume_dir:
            return Path(self.resume_dir)
        ckpt = self.checkpoint_dir()
        return ckpt.with_name(ckpt.name + ".resume")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["steering"] = self.steering.to_dict()
        return d


def training_arguments(s: TrainSettings, output_dir: str, epochs: float) -> TrainingArguments:
    """TrainingArguments for the protocol, across transformers 4.x and 5.x argument names."""
    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    kw: dict[str, Any] = dict(
        output_dir=output_dir,
        learning_rate=s.lr,
        lr_scheduler_type=s.scheduler,
        weight_decay=s.weight_decay,
        per_device_train_batch_size=s.bs,
        gradient_accumulation_steps=s.grad_accum,
        num_train_epochs=epochs,
        seed=s.seed,
        data_seed=s.seed,
        logging_steps=s.logging_steps,
        save_strategy="steps" if s.save_steps else "no",
        save_steps=s.save_steps or 500,  # unused when save_strategy is "no"
        save_total_limit=resume.KEEP,
        report_to=["wandb"] if s.wandb else "none",
        run_name=f"{get_task(s.dataset_name).name}_{model_short_name(s.model_name)}_{s.variant()}_seed{s.seed}",
        use_cpu=pick_device(s.device).type == "cpu",
        remove_unused_columns=False,
        disable_tqdm=not s.progress,
        dataloader_num_workers=0,
    )
    if "warmup_ratio" in names:  # transformers 4.x
        kw["warmup_ratio"] = s.warmup_ratio
    else:  # transformers 5: a float below 1 is a ratio of the total steps
        kw["warmup_steps"] = s.warmup_ratio
    if "group_by_length" in names:
        kw["group_by_length"] = True
    elif "train_sampling_strategy" in names:
        kw["train_sampling_strategy"] = "group_by_length"
    return TrainingArguments(**kw)


class SteeringTrainer(Trainer):
    def _get_train_sampler(self, train_dataset=None):
        """Length-grouped, seeded per epoch, over the global batch (steering/sampling.py)."""
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        a = self.args
        return EpochSeededLengthGroupedSampler(
            a.per_device_train_batch_size * a.world_size * a.gradient_accumulation_steps,
            lengths=dataset["length"],
            seed=a.data_seed if a.data_seed is not None else a.seed,
        )

    def compute_loss(self, model, inputs, return_outputs=False, **kwargs):
        result = super().compute_loss(model, inputs, return_outputs=return_outputs, **kwargs)
        loss = result[0] if return_outputs else result
        if not torch.isfinite(loss.detach()).all():
            raise NonFiniteLoss(
                f"the training loss is {loss.item()} at optimizer step "
                f"{self.state.global_step + 1} (epoch {self.state.epoch or 0:.2f}); {HINT}"
            )
        return result


def _joint_extras(model, s: TrainSettings) -> dict[str, Any]:
    """Two parameter groups (LoRA, adapters) with their own learning rates, and the
    orthogonality callback."""
    from steering.joint import OrthogonalityCallback

    optimizer = torch.optim.AdamW(
        [
            {"params": model.lora_parameters(), "lr": s.lora_lr or s.lr, "name": "lora"},
            {"params": model.adapter_parameters(), "lr": s.adapter_lr or s.lr, "name": "adapters"},
        ],
        lr=s.lr,
        weight_decay=s.weight_decay,
    )
    callback = OrthogonalityCallback(model, s.orthogonal_freq, s.orthogonal_side)
    return {"optimizers": (optimizer, None), "callbacks": [callback]}


def train(s: TrainSettings) -> dict[str, Any]:
    """Run one training job; returns a summary with the paths it wrote."""
    task = get_task(s.dataset_name)
    ckpt_dir, eval_dir = s.checkpoint_dir(), s.eval_dir()
    for d in {ckpt_dir, eval_dir, *([Path(s.train_log).parent] if s.train_log else [])}:
        if d.exists() and not d.is_dir():
            raise ValueError(
                f"output directory {d} exists and is a file; pass another --output-dir"
            )
    splits = task.load(data_dir=s.data_dir)  # data problems surface before the model loads
    train_split = splits["train"]
    if s.max_train_samples:
        train_split = train_split.select(range(min(s.max_train_samples, len(train_split))))
    tokenizer = load_tokenizer(s.model_name)
    base = load_base_model(s.model_name, s.dtype, s.device)
    chat = uses_chat_template(base.config.model_type)
    set_seed(s.seed)  # the adapters' random init too, not only the Trainer, follows the seed
    if s.method == "steering":
        model = SteeredModel(base, s.steering)
        n_trainable, share = model.num_trainable_parameters(), model.trainable_share()
    elif s.method == "reft":
        from steering.reft import ReftModel

        model = ReftModel(base, s.reft_rank, s.reft_first_n, s.reft_last_n)
        n_trainable = model.num_trainable_parameters()
        share = n_trainable / baselines.base_parameters(base)
    elif s.method == "joint":
        from steering.joint import JointModel

        model = JointModel(base, s.steering, s.lora_rank)
        n_trainable = baselines.trainable_parameters(model)
        share = n_trainable / baselines.base_parameters(model.lora)
    else:
        model = baselines.prepare(base, s.method, s.lora_rank)
        n_trainable = baselines.trainable_parameters(model)
        share = n_trainable / baselines.base_parameters(model)
    world = int(os.environ.get("WORLD_SIZE", "1"))  # set by torchrun for DDP
    main = int(os.environ.get("RANK", "0")) == 0
    if main:
        print(f"trainable params: {n_trainable:,} || trainable: {100 * share:.4f}%", flush=True)

    features = tokenize_split(task, train_split, tokenizer, chat=chat, single_bos=s.single_bos)
    data_stats = truncation_stats(features, task.max_length_for(chat))
    if main:
        for line in describe_stats(task.name, "train", data_stats):
            print(line, flush=True)
    features = features.map(lambda ex: {"length": len(ex["input_ids"])})
    epochs = s.epochs if s.epochs is not None else task.epochs
    if s.wandb:
        os.environ.setdefault("WANDB_PROJECT", "steering")
    resume_dir = s.resume_path()
    start = resume.prepare(
        resume_dir, resume.fingerprint(s.to_dict(), world), main, saving=s.save_steps > 0
    )
    if start is not None and main:
        print(f"resuming from {start}", flush=True)
    extras = _joint_extras(model, s) if s.method == "joint" else {}
    extras["callbacks"] = [
        *extras.get("callbacks", []),
        FiniteGradients(),
        resume.CompletionMarker(),
    ]
    with tempfile.TemporaryDirectory(prefix="steering-trainer-") as tmp:
        trainer = SteeringTrainer(
            model=model,
            args=training_arguments(s, str(resume_dir) if s.save_steps else tmp, epochs),
            train_dataset=features,
            data_collator=Collator(tokenizer.pad_token_id),
            **extras,
        )
        result = trainer.train(resume_from_checkpoint=str(start) if start else None)
    losses = [(h["step"], h["loss"]) for h in trainer.state.log_history if "loss" in h]
    if not trainer.is_world_process_zero():  # DDP: the main process saves and evaluates
        return {"main_process": False, "optimizer_steps": trainer.state.global_step}

    if s.method == "steering":
        model.save_pretrained(ckpt_dir)
    elif s.method == "joint":
        model.steered.save_pretrained(ckpt_dir)
        baselines.save(
            model.lora, "joint", ckpt_dir, {"lora_rank": s.lora_rank, "base_model": s.model_name}
        )
    elif s.method == "reft":
        baselines.save(model, "reft", ckpt_dir, {"base_model": s.model_name})
    else:
        targets = list(get_architecture(base).lora_targets) if s.method == "lora" else None
        baselines.save(
            model,
            s.method,
            ckpt_dir,
            {"lora_rank": s.lora_rank, "targets": targets, "base_model": s.model_name},
        )
    summary = {
        "settings": s.to_dict(),
        "variant": s.variant(),
        "method": s.method,
        "trainable_parameters": n_trainable,
        "trainable_share": share,
        "epochs": epochs,
        "train_examples": len(train_split),
        "data": {**data_stats, "chat_template": chat, "single_bos": s.single_bos},
        "optimizer_steps": trainer.state.global_step,
        "train_loss": result.training_loss if math.isfinite(result.training_loss) else None,
        "loss_history": losses,
        "train_runtime_s": result.metrics.get("train_runtime"),
        "checkpoint": str(ckpt_dir),
        "resumed_from_step": resume.step(start) if start else None,
        "world_size": world,
        "main_process": True,
    }
    write_json(ckpt_dir / "training.json", summary)
    log_path = Path(s.train_log) if s.train_log else ckpt_dir / "train_log.jsonl"
    write_text(log_path, "".join(json.dumps(h) + "\n" for h in trainer.state.log_history))
    resume.finish(resume_dir, s.keep_checkpoints)
    if s.do_eval:
        from steering.evaluation import evaluate_splits, provenance

        names = ["test"] if s.test_only else ["validation", "test"]
        for r in evaluate_splits(
            model,
            tokenizer,
            task,
            splits,
            {n: eval_dir / f"{n}.json" for n in names},
            provenance(s.to_dict(), task, s.seed),
            chat=chat,
            single_bos=s.single_bos,
            batch_size=s.eval_batch_size,
            max_samples=s.max_eval_samples,
            progress=s.progress,
        ):
            summary[f"{r['split']}_accuracy"] = r["accuracy"]
            print(
                f"{task.name} {r['split']}: accuracy {r['accuracy']:.4f} (n={r['n']})", flush=True
            )
    return summary
