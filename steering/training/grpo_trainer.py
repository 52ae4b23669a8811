"""TRL's ``GRPOTrainer`` as this package runs it, for any method of the registry.

- ``Policy``: a method's model as TRL takes it (config, ``generate``, forward; the hub hooks
  TRL calls made no-ops).
- The trainer: prompts tokenized without added special tokens and cut from the left to
  ``max_prompt_length`` (TRL 0.25.1's way, the official run's; current TRL adds special
  tokens and never cuts), completion log-probabilities from the method's own forward (current
  TRL's fused LM head over ``model.base_model`` would skip interventions that are not forward
  hooks, such as exact last-token steering), and resume checkpoints of the trainable tensors
  alone (``TRAINABLE_FILE``), loaded back by name.
- ``build_trainer``: the trainer of one run.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from steering.tasks.rewards import OFFICIAL as OFFICIAL_REWARDS


class Policy(nn.Module):
    """A method's model as TRL's trainer takes it: the config, generation and forward of the
    model inside, with the hub and checkpointing hooks TRL calls made no-ops (the method saves
    its own checkpoint). ``model``'s trainable tensors are the policy's."""

    def __init__(
        self, model: nn.Module, config, generation_config, prompt_positions: bool = False
    ) -> None:
        super().__init__()
        self.model = model
        self.config = config
        self.generation_config = generation_config
        self.prompt_positions = prompt_positions  # Method.prompt_positions
        self.is_gradient_checkpointing = False

    def forward(self, input_ids, attention_mask=None, **kwargs):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, **kwargs)

    def generate(self, *args, **kwargs):
        return self.model.generate(*args, **kwargs)

    def add_model_tags(self, tags) -> None:
        pass  # a model card for the hub; our checkpoints are the method's own


TRAINABLE_FILE = "trainable.safetensors"  # a GRPO resume checkpoint's weights


def _trainer_class():
    from trl import GRPOTrainer
    from trl.trainer.utils import entropy_from_logits, selective_log_softmax

    class Trainer(GRPOTrainer):
        """TRL's GRPO with prompts tokenized and scored as the official run, and resume
        checkpoints of the trainable tensors alone (module doc)."""

        def _save(self, output_dir=None, state_dict=None):
            from safetensors.torch import save_file

            output_dir = output_dir or self.args.output_dir
            os.makedirs(output_dir, exist_ok=True)
            trainable = {
                name: p.detach().contiguous().cpu()
                for name, p in self.model.named_parameters()
                if p.requires_grad
            }
            save_file(trainable, os.path.join(output_dir, TRAINABLE_FILE))

        def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
            from safetensors.torch import load_file

            model = model or self.model
            path = os.path.join(resume_from_checkpoint, TRAINABLE_FILE)
            saved = load_file(path)
            params = dict(model.named_parameters())
            expected = {n for n, p in params.items() if p.requires_grad}
            if set(saved) != expected:
                raise ValueError(
                    f"{path} holds other tensors than this run trains "
                    f"({len(set(saved) ^ expected)} differ): not a checkpoint of this run"
                )
            with torch.no_grad():
                for name, tensor in saved.items():
                    params[name].copy_(tensor)

        def _tokenize_prompts(self, prompts: list):
            if not isinstance(prompts[0], str):
                return super()._tokenize_prompts(prompts)
            if self.encode is not None:  # a task's prompts, cut from the left like the official
                return [self.encode(p)[-self.max_prompt_length :] for p in prompts], None, {}
            tok = self.processing_class
            side = tok.truncation_side
            tok.truncation_side = "left"  # keep the end of a prompt: the generation prompt
            try:
                ids = tok(
                    text=prompts,
                    add_special_tokens=False,
                    truncation=True,
                    max_length=self.max_prompt_length,
                )["input_ids"]
            finally:
                tok.truncation_side = side
            return ids, None, {}

        def _get_per_token_logps_and_entropies(
            self,
            model,
            input_ids,
            attention_mask,
            logits_to_keep,
            batch_size=None,
            compute_entropy=False,
            compute_aux_loss=False,
            **_,
        ):
            batch_size = batch_size or input_ids.size(0)
            logps, entropies = [], []
            for start in range(0, input_ids.size(0), batch_size):
                ids = input_ids[start : start + batch_size]  # (b, prompt + completion)
                mask = attention_mask[start : start + batch_size]
                extra = {}
                if self.model.prompt_positions:  # the prompt ends where the completion starts
                    labels = ids.masked_fill(mask == 0, -100)
                    labels[:, :-logits_to_keep] = -100
                    extra["labels"] = labels
                with self.accelerator.autocast():
                    logits = model(input_ids=ids, attention_mask=mask, use_cache=False, **extra)
                    logits = logits.logits
                # the logits that predict the completion tokens: (b, logits_to_keep, V)
                logits = logits[:, :-1][:, -logits_to_keep:].float() / self.temperature
                logps.append(selective_log_softmax(logits, ids[:, -logits_to_keep:]))
                if compute_entropy:
                    with torch.no_grad():
                        entropies.append(entropy_from_logits(logits))
            return (
                torch.cat(logps),
                torch.cat(entropies) if compute_entropy else None,
                None,
            )

    return Trainer


def build_trainer(
    model,
    tokenizer,
    dataset,
    args,
    max_prompt_length: int,
    callbacks=(),
    rewards=OFFICIAL_REWARDS,
    prompt_positions: bool = False,
    optimizers=(None, None),
    encode=None,
):
    """The GRPO trainer of ``model`` (any method's) on ``dataset`` (columns ``prompt``: the
    rendered chat text, and the columns ``rewards`` read; the official: ``solution``)."""
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")  # TRL reports usage unless told
    config = model.config
    generation_config = model.generation_config
    trainer = _trainer_class()(
        model=Policy(model, config, generation_config, prompt_positions),
        reward_funcs=list(rewards),
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=list(callbacks),
        optimizers=optimizers,
    )
    trainer.max_prompt_length = max_prompt_length
    trainer.encode = encode  # text -> ids for a task's own prompts; None: the official way
    return trainer
