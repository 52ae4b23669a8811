"""The HF Trainer as the protocol runs it: TrainingArguments across transformers versions,
the official batch order (or length-grouped batches on request, ``steering/training/sampling.py``),
and the stops at a non-finite loss or gradient."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments

from steering.loading.loader import model_short_name, pick_device
from steering.methods import get_method
from steering.runtime.errors import NonFiniteLoss
from steering.tasks import get_task
from steering.training import resume
from steering.training.gradients import all_finite, local_part
from steering.training.sampling import TrainingOrder

HINT = "lower --lr, or train in --dtype float32"


class FiniteGradients(TrainerCallback):
    """Stops training at the first optimizer step whose gradients are not all finite.

    A finite loss can still give NaN/inf gradients (an overflow in the backward pass of a
    half-precision model); AdamW would then write NaN into every weight it touches and the
    run would go on, reporting a finite loss from a broken model. Runs after gradient
    clipping, before ``optimizer.step()``, with one host sync per step.
    """

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        named = [(n, local_part(p.grad)) for n, p in model.named_parameters() if p.grad is not None]
        if all_finite([g for _, g in named]):
            return
        bad = [n for n, g in named if not torch.isfinite(g).all()] or ["(another process's shard)"]
        raise NonFiniteLoss(
            f"gradients are NaN or infinite at optimizer step {state.global_step + 1} "
            f"(epoch {state.epoch or 0:.2f}) in {len(bad)} of {len(named)} trainable tensors, "
            f"first {bad[0]}; {HINT}"
        )


def training_arguments(
    s, output_dir: str, epochs: float, layer_class: str | None = None
) -> TrainingArguments:
    """TrainingArguments for the protocol, across transformers 4.x and 5.x argument names.
    ``s.sharding == "fsdp"``: FSDP (version 2, each ``layer_class`` block its own unit) over
    the processes torchrun started."""
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
        # bfloat16 autocast over float32 master weights (full fine-tuning under bf16);
        # frozen-base methods hold their base in bfloat16 and need none (precision.py)
        bf16=get_method(s.method).autocast(s.precision),
    )
    if getattr(s, "sharding", "none") == "fsdp":
        kw["fsdp"] = True
        kw["fsdp_config"] = {
            "version": 2,
            "transformer_layer_cls_to_wrap": [layer_class],
            "reshard_after_forward": True,
            "state_dict_type": "FULL_STATE_DICT",
        }
    if "warmup_ratio" in names:  # transformers 4.x
        kw["warmup_ratio"] = s.warmup_ratio
    else:  # transformers 5: a float below 1 is a ratio of the total steps
        kw["warmup_steps"] = s.warmup_ratio
    if "group_by_length" in names:
        kw["group_by_length"] = True
    elif "train_sampling_strategy" in names:
        kw["train_sampling_strategy"] = "group_by_length"
    return one_device_per_process(TrainingArguments(**kw))


def one_device_per_process(args: TrainingArguments) -> TrainingArguments:
    """Each process trains on one device. Left alone, a single process that sees several GPUs
    wraps the model in ``nn.DataParallel`` over all of them and draws ``bs`` rows per GPU, so
    its batch is no longer the protocol's (8 x 2 on 8 GPUs becomes 64 x 2); several GPUs are
    used through torchrun (``gpus_per_train``), one process each."""
    if args.n_gpu > 1 and args.world_size == 1:  # n_gpu first: it sets the devices up
        args._n_gpu = 1  # read by Trainer (DataParallel, batch size); no public setter
    return args


def check_trainer_device(device: torch.device, world: int) -> None:
    """Refuse a device the HF Trainer would not train on. A single process trains on the
    first visible GPU (the Trainer moves the model there), so ``--device cuda:1`` would be
    quietly ignored; under torchrun each process takes ``cuda:<LOCAL_RANK>``, which
    ``loader.pick_device`` already gives."""
    if world == 1 and device.type == "cuda" and (device.index or 0) != 0:
        raise ValueError(
            f"--device {device}: the HF Trainer trains one process on the first visible GPU; "
            f"to train on GPU {device.index}, run with CUDA_VISIBLE_DEVICES={device.index} and "
            "--device cuda (the pipeline's GPU leases do this for every job)"
        )


class SteeringTrainer(Trainer):
    """``length_grouping``: batches of similar length instead of the official random order;
    ``logits``: "supervised" computes the LM head and the loss at the positions whose next
    token is supervised only (``steering/training/logits.py``), "all" at every position."""

    def __init__(
        self, *args, length_grouping: bool = False, logits: str = "supervised", **kwargs
    ) -> None:
        from steering.training.logits import SupervisedHead, check_mode

        self.length_grouping = length_grouping
        super().__init__(*args, **kwargs)
        self.head = SupervisedHead(self.model) if check_mode(logits) == "supervised" else None

    def _get_train_sampler(self, train_dataset=None):
        """The official order, or length-grouped over the global batch (training/sampling.py)."""
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        a = self.args
        return TrainingOrder(
            dataset["length"],
            seed=a.data_seed if a.data_seed is not None else a.seed,
            window=a.per_device_train_batch_size * a.world_size * a.gradient_accumulation_steps,
            grouped=self.length_grouping,
        )

    def compute_loss(self, model, inputs, return_outputs=False, **kwargs):
        if self.head is not None and model.training:  # evaluation keeps every position
            with self.head.only(inputs) as restricted:
                result = super().compute_loss(model, restricted, return_outputs, **kwargs)
        else:
            result = super().compute_loss(model, inputs, return_outputs=return_outputs, **kwargs)
        loss = result[0] if return_outputs else result
        if not torch.isfinite(loss.detach()).all():
            raise NonFiniteLoss(
                f"the training loss is {loss.item()} at optimizer step "
                f"{self.state.global_step + 1} (epoch {self.state.epoch or 0:.2f}); {HINT}"
            )
        return result


def layer_class(base) -> str:
    """The decoder layer's class name (FSDP's unit of sharding)."""
    from steering.architectures import decoder_layers

    return type(decoder_layers(base)[0]).__name__
