"""One training run under the official defaults (PROTOCOL.md section 2), for any method.

``train(settings)`` loads the task data and the base model once, builds the method's model
(``steering.methods``: post-block steering by default), trains it with the HF Trainer
(``steering/training/trainer.py``: lr 9e-4, linear schedule, warmup 0.03, weight decay 0, batch 8 x
accumulation 2, per-dataset epochs, the official batch order, seed 42 unless told otherwise),
saves the method's checkpoint and, with ``do_eval``, evaluates validation and test in the
same process.
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

from transformers import set_seed

from steering.architectures import uses_chat_template
from steering.config import SteeringConfig
from steering.data import Collator, training_features
from steering.loading.loader import (
    load_base_model,
    load_model_type,
    load_tokenizer,
    model_short_name,
    pick_device,
)
from steering.methods import get_method, trained_methods
from steering.runtime import gpu_lease, storage
from steering.runtime.io import write_json, write_text
from steering.runtime.precision import apply as apply_precision
from steering.runtime.precision import resolve
from steering.tasks import get_task
from steering.training import memory, packing, resume
from steering.training.trainer import (
    FiniteGradients,
    SteeringTrainer,
    check_trainer_device,
    layer_class,
    training_arguments,
)


@dataclass
class TrainSettings:
    """One training run: the official flags plus ours. ``epochs=None`` = the task's epochs."""

    model_name: str
    dataset_name: str
    steering: SteeringConfig = field(default_factory=SteeringConfig)
    method: str = "steering"  # a name in steering.methods.METHODS
    options: dict[str, Any] = field(default_factory=dict)  # the method's settings (its module)
    scheduler: str = "linear"  # or "cosine" (the joint default)
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
    precision: str = "fp32"  # fp32 | tf32 | bf16 (steering/runtime/precision.py)
    eval_batch_size: int = 16
    wandb: bool = False
    device: str | None = None
    logging_steps: int = 10
    progress: bool = True
    save_steps: int = 0  # checkpoint for resuming every N optimizer steps; 0 = never
    resume_dir: str | None = None  # default: <checkpoint>.resume beside the checkpoint
    keep_checkpoints: bool = False  # keep the resume checkpoints after a successful run
    single_bos: bool = False  # chat path: drop the template's BOS the tokenizer doubles
    sharding: str = "none"  # or "fsdp": weights, grads, optimizer sharded over the processes
    length_grouping: bool = False  # batches of similar length, not the official random order
    logits: str = "supervised"  # or "all": the LM head at every position (training/logits.py)
    packing: bool = True  # rows of a batch in one sequence where exact (training/packing.py)

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
        try:
            method = get_method(self.method)
        except ValueError:
            raise ValueError(
                f"--method {self.method!r} is invalid; choose one of {trained_methods()}"
            ) from None
        if not method.trains:
            raise ValueError(f"method {self.method!r} trains nothing; evaluate it instead")
        if self.scheduler not in ("linear", "cosine"):
            raise ValueError(f"--scheduler {self.scheduler!r} is invalid; choose linear or cosine")
        self.precision = resolve(self.precision)
        method.check_precision(self.precision)
        if self.sharding not in ("none", "fsdp"):
            raise ValueError(f"--sharding {self.sharding!r} is invalid; choose none or fsdp")
        if self.sharding == "fsdp":
            method.check_sharding()
        if self.logits not in ("supervised", "all"):
            raise ValueError(f"--logits {self.logits!r} is invalid; choose supervised or all")
        self.options = method.check_options(dict(self.options))

    def variant(self) -> str:
        return get_method(self.method).variant_name(self.options, self.steering)

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


def train(s: TrainSettings) -> dict[str, Any]:
    """Run one training job; returns a summary with the paths it wrote."""
    task = get_task(s.dataset_name)
    ckpt_dir = s.checkpoint_dir()
    for d in output_dirs(s):  # a read-only or full target stops the run before any work
        storage.probe(d)
    splits = task.load(data_dir=s.data_dir)  # data problems surface before the model loads
    train_split = splits["train"]
    if s.max_train_samples:
        train_split = train_split.select(range(min(s.max_train_samples, len(train_split))))
    tokenizer = load_tokenizer(s.model_name)
    method = get_method(s.method)
    world = int(os.environ.get("WORLD_SIZE", "1"))  # set by torchrun for DDP
    main = int(os.environ.get("RANK", "0")) == 0
    if s.sharding == "fsdp" and world < 2:
        raise ValueError(
            "--sharding fsdp shards over the processes torchrun starts, and this is one: "
            "launch with python -m torch.distributed.run --nproc-per-node N (N >= 2, one per "
            "GPU), or drop --sharding"
        )
    device = pick_device(s.device)
    check_trainer_device(device, world)
    if main:
        gpu_lease.say_if_on_cpu(device.type, "trains")
    apply_precision(s.precision, device)
    model_type = load_model_type(s.model_name) or ""
    chat = uses_chat_template(model_type)
    refused = packing.refusal(model_type, method, s.options, s.steering) if s.packing else None
    if refused and main:
        print(f"note: padded batches, not packed: {refused}", flush=True)
    packed = s.packing and refused is None
    # Tokenized before any weight is loaded: the memory check counts the logits of the rows'
    # supervised positions, which only the tokenized data knows.
    features, data_stats = training_features(
        task, train_split, tokenizer, chat, s.single_bos, verbose=main
    )
    plan = memory.plan_training(s, task, data_stats["max_supervised"], device=device)
    base = load_base_model(s.model_name, method.base_dtype(s.precision), s.device)
    set_seed(s.seed)  # the adapters' random init too, not only the Trainer, follows the seed
    model = method.build(base, s.options, s.steering, s.precision)
    n_trainable = method.trainable_parameters(model)
    share = n_trainable / method.base_parameters(model)
    if main:
        print(f"trainable params: {n_trainable:,} || trainable: {100 * share:.4f}%", flush=True)
        weights = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
        storage.probe(ckpt_dir, weights, "checkpoint directory")  # room for the result
        if s.save_steps:  # each resume checkpoint: the weights and AdamW's two moments
            storage.probe(s.resume_path(), 3 * weights, "resume directory")

    epochs = s.epochs if s.epochs is not None else task.epochs
    if s.wandb:
        os.environ.setdefault("WANDB_PROJECT", "steering")
    resume_dir = s.resume_path()
    start = resume.prepare(
        resume_dir, resume.fingerprint(s.to_dict(), world), main, saving=s.save_steps > 0
    )
    if start is not None and main:
        print(f"resuming from {start}", flush=True)
    extras = method.trainer_extras(model, s)
    extras["callbacks"] = [
        *extras.get("callbacks", []),
        FiniteGradients(),
        resume.CompletionMarker(),
    ]
    with tempfile.TemporaryDirectory(prefix="steering-trainer-") as tmp:
        trainer = SteeringTrainer(
            model=model,
            args=training_arguments(
                s, str(resume_dir) if s.save_steps else tmp, epochs, layer_class(base)
            ),
            train_dataset=features,
            data_collator=packing.PackedCollator() if packed else Collator(tokenizer.pad_token_id),
            length_grouping=s.length_grouping,
            logits=s.logits,
            **extras,
        )
        if s.sharding == "fsdp" and not trainer.is_fsdp_enabled and main:
            print(
                "note: accelerate applies FSDP to GPU processes only; on the CPU this run is "
                "DDP (every process holds the whole model), with the same result",
                flush=True,
            )
        result = trainer.train(resume_from_checkpoint=str(start) if start else None)
    losses = [(h["step"], h["loss"]) for h in trainer.state.log_history if "loss" in h]
    # FSDP: every process gathers the sharded weights for the one that saves
    state = trainer.accelerator.get_state_dict(trainer.model) if s.sharding == "fsdp" else None
    if not trainer.is_world_process_zero():  # DDP: the main process saves and evaluates
        return {"main_process": False, "optimizer_steps": trainer.state.global_step}

    summary = {
        "settings": s.to_dict(),
        "variant": s.variant(),
        "method": s.method,
        "trainable_parameters": n_trainable,
        "trainable_share": share,
        "epochs": epochs,
        "train_examples": len(train_split),
        "batch_order": "length-grouped" if s.length_grouping else "official",
        "batch_layout": "packed" if packed else "padded",
        "packing_refused": refused,
        "data": {**data_stats, "chat_template": chat, "single_bos": s.single_bos},
        "memory_estimate": dataclasses.asdict(plan) if plan else None,
        "optimizer_steps": trainer.state.global_step,
        "train_loss": result.training_loss if math.isfinite(result.training_loss) else None,
        "loss_history": losses,
        "train_runtime_s": result.metrics.get("train_runtime"),
        "checkpoint": str(ckpt_dir),
        "resumed_from_step": resume.step(start) if start else None,
        "world_size": world,
        "main_process": True,
    }
    log = "".join(json.dumps(h) + "\n" for h in trainer.state.log_history)
    save_outputs(method, model, s, summary, log, state)
    resume.finish(resume_dir, s.keep_checkpoints)
    if s.do_eval:
        if trainer.is_fsdp_enabled:
            model = _unsharded(method, trainer, s, device)
        evaluate_trained(model, tokenizer, task, splits, s, chat, summary)
    return summary


def evaluate_trained(model, tokenizer, task, splits, s: TrainSettings, chat: bool, summary):
    """``--do-eval``: validation (unless ``--test-only``) and test of the trained model, into
    ``s.eval_dir()``; each split's accuracy added to ``summary`` and printed."""
    from steering.evaluation.evaluator import evaluate_splits, provenance

    names = ["test"] if s.test_only else ["validation", "test"]
    for r in evaluate_splits(
        model,
        tokenizer,
        task,
        splits,
        {n: s.eval_dir() / f"{n}.json" for n in names},
        provenance(s.to_dict(), task, s.seed),
        chat=chat,
        single_bos=s.single_bos,
        batch_size=s.eval_batch_size,
        max_samples=s.max_eval_samples,
        progress=s.progress,
    ):
        summary[f"{r['split']}_accuracy"] = r["accuracy"]
        print(f"{task.name} {r['split']}: accuracy {r['accuracy']:.4f} (n={r['n']})", flush=True)


def _unsharded(method, trainer, s: TrainSettings, device):
    """The model to evaluate after FSDP training: the checkpoint just saved, loaded whole as
    the pipeline's evaluation job loads it. The trained model's weights are shards that only
    all processes together can run, and the other processes have ended."""
    from types import SimpleNamespace

    trainer.model = trainer.model_wrapped = None  # this process's shards: no longer needed
    if device.type == "cuda":
        import torch

        torch.cuda.empty_cache()
    print(f"evaluating {s.checkpoint_dir()} (FSDP trained shards; loaded whole)", flush=True)
    settings = SimpleNamespace(precision=s.precision, device=str(device), device_map=None)
    model, _ = method.load(s.checkpoint_dir(), settings)
    return model


def output_dirs(s: TrainSettings) -> list[Path]:
    """Every directory a run writes to: checkpoint, evaluations, log, resume checkpoints."""
    dirs = [s.checkpoint_dir()]
    dirs += [s.eval_dir()] if s.do_eval else []
    dirs += [Path(s.train_log).parent] if s.train_log else []
    dirs += [s.resume_path()] if s.save_steps else []
    return list(dict.fromkeys(dirs))


def save_outputs(method, model, s: TrainSettings, summary: dict, log: str, state=None) -> None:
    """The checkpoint (``training.json`` and the log inside) written whole or not at all, or
    rescued elsewhere when the file system refuses it (``storage.save_or_rescue``)."""
    extra = {"state": state} if state is not None else {}

    def write(where: Path, log_inside: bool = not s.train_log) -> None:
        method.save(model, where, s, **extra)
        write_json(where / "training.json", summary)
        if log_inside:
            write_text(where / "train_log.jsonl", log)

    storage.save_or_rescue(
        write,
        s.checkpoint_dir(),
        s.variant(),
        last=("steering_config.json", "method.json", "training.json"),
        resume_dir=s.resume_path() if s.save_steps else None,
        # the log outside the checkpoint first, so a failure there rescues both
        before=(lambda: write_text(s.train_log, log)) if s.train_log else None,
        rescue_write=lambda where: write(where, log_inside=True),
    )
