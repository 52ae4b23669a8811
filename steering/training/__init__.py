"""Training one (model, dataset, method, seed) under the official defaults with the HF
Trainer, and everything a training job needs beside the method itself.

- ``run``: ``train(settings)``: data, base model, the method's model, the Trainer, the saved
  checkpoint and its evaluation; ``TrainSettings``
- ``trainer``: the Trainer as the protocol runs it (arguments, batch order, non-finite stops)
- ``sampling``: the training order (the official random batches, or length-grouped)
- ``logits``: the LM head only at supervised positions
- ``gradients``: finite-gradient checks that hold for sharded (FSDP) gradients
- ``resume``: periodic checkpoints and picking one up
- ``memory``: what a job needs per GPU and on its host, from the model's config (torch-free;
  the pipeline plans with it)
- ``flags``: the training and inference scripts' shared flags (the official command line)
- ``grpo``: GSM8K-GRPO with TRL's ``GRPOTrainer`` for any method; ``grpo_settings``: its flags
  and the checks that need no model (torch-free)

May import: ``evaluation``, ``methods``, ``loading``, ``tasks``, the top-level modules and
``runtime``. Nothing here imports torch at package import, so ``training.memory`` loads in
the torch-free pipeline.
"""
