"""Where a pipeline job runs and how its batch is split: its GPUs, sharding, rows per device
and gradient accumulation, for a model and for one variant of it (no torch).

A model entry sets ``gpus_per_train``, ``gpus_per_eval`` and ``sharding`` for all its
variants (over the ``training`` section); its ``variants:`` map sets the training ones, and
the batch's split, for one variant (each point of a swept variant takes its variant's entry):

    models:
      llama-3.1-8b:
        name: meta-llama/Llama-3.1-8B
        variants:
          full: {gpus_per_train: 2, sharding: fsdp, bs: 4}  # FSDP over 2 GPUs, 4 x 2 x 2 rows
          lora: {bs: 4, grad_accum: 4}                      # one GPU, 4 x 4 rows

Placement never changes what is trained: an optimizer step's rows, bs x grad_accum x
gpus_per_train, stay those of the run without the entry (the protocol's 8 x 2 x 1 = 16), and
the loss is averaged over the tokens of all of them however they are split
(``tests/test_distributed.py``, ``tests/test_training.py``); ``problems`` refuses an entry
that would change them. Functions take the grid (``pipeline.grid``), whose variants are
points (``silu@lr=0.002``).
"""

from __future__ import annotations

from typing import Any

from steering.pipeline import sweep

BS, GRAD_ACCUM = 8, 2  # the protocol's rows per device and accumulation (PROTOCOL.md section 2)


def model_setting(config: dict, model: str, key: str, default: Any) -> Any:
    """A per-model setting, else the ``training`` section's, else the default."""
    value = config["models"][model].get(key)
    return value if value is not None else config.get("training", {}).get(key, default)


def variant_entry(config: dict, model: str, variant: str) -> dict[str, Any]:
    """The model's ``variants:`` entry for ``variant`` (or the variant a point belongs to)."""
    entries = config["models"][model].get("variants") or {}
    return entries.get(variant) or entries.get(sweep.split_run_name(variant)[0]) or {}


def job_setting(config: dict, model: str, variant: str, key: str, default: Any) -> Any:
    """A training job's setting: the model's entry for the variant, else ``model_setting``."""
    value = variant_entry(config, model, variant).get(key)
    return value if value is not None else model_setting(config, model, key, default)


def train_gpus(config: dict, model: str, variant: str) -> int:
    """GPUs one training job uses (``gpus_per_train``; one process each under torchrun)."""
    return int(job_setting(config, model, variant, "gpus_per_train", 1))


def eval_gpus(config: dict, model: str) -> int:
    """GPUs one evaluation job of ``model`` spreads the model over (``gpus_per_eval``)."""
    return int(model_setting(config, model, "gpus_per_eval", 1))


def sharding(config: dict, model: str, variant: str) -> str:
    """``fsdp`` or ``none`` for a training job (only methods that shard ever get ``fsdp``)."""
    from steering.methods import DEFAULT, get_method

    method = get_method(config["variants"][variant].get("method", DEFAULT))
    chosen = job_setting(config, model, variant, "sharding", None) or "none"
    return chosen if method.shardable else "none"


def batch(config: dict, model: str, variant: str, settings: dict) -> tuple[int, int]:
    """(rows per device, accumulation) of a training job: the model's entry for the variant
    over the run's settings (``pipeline.run_settings``: training, dataset, variant)."""
    entry = variant_entry(config, model, variant)
    bs = entry.get("bs") or settings.get("bs") or BS
    return int(bs), int(entry.get("grad_accum") or settings.get("grad_accum") or GRAD_ACCUM)


def train_launcher(config: dict, model: str, variant: str) -> str:
    """``python``, or torchrun with one process per GPU when the job has several.

    ``--standalone`` because a job's GPUs are on one node (the train rule asks Slurm for them
    as one allocation); the rendezvous then needs no address or port from us.
    """
    n = train_gpus(config, model, variant)
    if n == 1:
        return "python"
    return f"python -m torch.distributed.run --standalone --nproc-per-node {n}"


def per_job(config: dict, value_of):
    """``value_of(config, model)`` for a rule: a constant when every model gives the same
    value, else a function of a job's wildcards. Snakemake calls a function once per job and
    inspects its signature each time, which costs seconds over the paper grid's thousands of
    jobs; a constant costs nothing."""
    values = {m: value_of(config, m) for m in config["models"]}
    return _constant_or_lookup(values, lambda wildcards: wildcards.model)


def per_train_job(config: dict, value_of):
    """``per_job`` for ``value_of(config, model, variant)``: a constant when every training
    job gives the same value, else a function of the job's model and variant."""
    values = {(m, v): value_of(config, m, v) for m in config["models"] for v in config["variants"]}
    return _constant_or_lookup(values, lambda wildcards: (wildcards.model, wildcards.variant))


def _constant_or_lookup(values: dict, key_of):
    """The one value when all ``values`` are alike, else a function looking a job's up."""
    if len(set(map(repr, values.values()))) == 1:
        return next(iter(values.values()))
    return lambda wildcards: values[key_of(wildcards)]


def problems(config: dict, run_settings) -> list[str]:
    """A model's ``variants:`` entries must name its config's variants and keep each
    optimizer step's rows; ``sharding: fsdp`` needs two GPUs or more and a method that
    shards. ``config``: the config as checked (variants unswept, defaults filled);
    ``run_settings``: ``pipeline.run_settings`` (passed in: the pipeline imports this)."""
    from steering.methods import DEFAULT, get_method

    grid = {**config, "variants": sweep.expand(config["variants"])}
    out = []
    for name, model in config["models"].items():
        entries = model.get("variants") or {}
        out += [
            f"models.{name}.variants.{v}: no such variant; the config's are "
            f"{sorted(config['variants'])}"
            for v in entries
            if v not in config["variants"]
        ]
        for variant, raw in grid["variants"].items():  # each point of a sweep
            method = get_method((raw or {}).get("method", DEFAULT))
            entry = variant_entry(grid, name, variant)
            own = sweep.split_run_name(variant)[0]
            where = f"models.{name}" + (f".variants.{own}" if entry else "")
            if entry.get("sharding") == "fsdp" and not method.shardable:
                out.append(
                    f"{where}: sharding: fsdp, but method {method.name} does not shard (full "
                    "does); drop it"
                )
            gpus = train_gpus(grid, name, variant)
            if method.trains and sharding(grid, name, variant) == "fsdp" and gpus < 2:
                out.append(
                    f"{where}: sharding: fsdp shards over the GPUs of a training job, and "
                    f"gpus_per_train is {gpus}; set gpus_per_train: 2 or more, or drop sharding"
                )
            if entry and method.trains:
                out += _batch_problems(grid, name, variant, where, run_settings)
        shards = [
            get_method((v or {}).get("method", DEFAULT)).shardable
            for v in config["variants"].values()
        ]
        if model_setting(config, name, "sharding", None) == "fsdp" and not any(shards):
            out.append(
                f"models.{name}: sharding: fsdp, but no variant's method shards (full does); "
                "drop sharding"
            )
    return list(dict.fromkeys(out))


def _batch_problems(grid: dict, model: str, variant: str, where: str, run_settings) -> list[str]:
    """An entry that changes the rows of an optimizer step on some dataset."""
    for dataset in grid["datasets"]:
        settings = run_settings(grid, dataset, variant)
        bs, accum = batch(grid, model, variant, settings)
        gpus = train_gpus(grid, model, variant)
        plain = (
            settings.get("bs") or BS,
            settings.get("grad_accum") or GRAD_ACCUM,
            int(model_setting(grid, model, "gpus_per_train", 1)),
        )
        if bs * accum * gpus != plain[0] * plain[1] * plain[2]:
            return [
                f"{where}: bs {bs} x grad_accum {accum} x {gpus} GPU(s) = {bs * accum * gpus} "
                f"rows an optimizer step on {dataset}, and the run without this entry takes "
                f"{plain[0]} x {plain[1]} x {plain[2]} = {plain[0] * plain[1] * plain[2]}: "
                "placement must not change what is trained; split the same rows (halve bs "
                "and double grad_accum, or halve bs per doubling of the GPUs)"
            ]
    return []
