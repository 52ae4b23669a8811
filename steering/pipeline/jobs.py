"""The pipeline's grid and job arguments, from a validated config (no torch: the DAG of
thousands of jobs builds in seconds).

A config names models, datasets, variants and seeds (``config/schema.yaml``). ``grid``
replaces every swept variant by its points (``steering/pipeline/sweep.py``: ``silu@lr=0.002`` ...),
each an ordinary variant from then on; the functions below take that expanded config. Every
(model, dataset, variant or point, seed) is a run; a ``base`` variant (method ``base``)
evaluates the untrained model once, under the first seed. Each run lives in
``results/runs/{model}/{dataset}/{variant}/seed{seed}/``. The functions here turn a run into
the exact, quoted command-line arguments of ``scripts/train.py`` / ``scripts/inference.py``.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steering.methods import DEFAULT, get_method
from steering.methods.base import OBJECTIVE, TRAINING
from steering.pipeline import placement, sweep

RESULTS = "results"


@dataclass(frozen=True)
class Run:
    model: str
    dataset: str
    variant: str
    seed: int

    @property
    def dir(self) -> str:
        return run_dir(self.model, self.dataset, self.variant, self.seed)


def config_names(files) -> list[str]:
    """The config files a run was given (the embedded default when none), as the user
    would write them: relative to the working directory when inside it."""
    import os

    names = [str(f) for f in files] or ["config/config.yaml"]
    here = os.getcwd()
    return [
        os.path.relpath(f, here) if os.path.abspath(f).startswith(here + os.sep) else f
        for f in names
    ]


def run_dir(model: str, dataset: str, variant: str, seed: int | str) -> str:
    return f"{RESULTS}/runs/{model}/{dataset}/{variant}/seed{seed}"


def data_dir(dataset: str) -> str:
    return f"{RESULTS}/data/{dataset}"


def tiny_model_dir(model: str) -> str:
    """Where the pipeline builds a model: a tiny one, or one converted from a GGUF file."""
    return f"{RESULTS}/models/{model}"


BUILT = ("tiny", "gguf")  # model entries the pipeline makes itself (rules/data.smk)


def is_built(entry: dict) -> bool:
    """Whether a ``models`` entry is made by the pipeline (``tiny:`` or ``gguf:``)."""
    return any(kind in entry for kind in BUILT)


def built_pattern(config: dict, kind: str) -> str:
    """A regex accepting exactly the model keys built as ``kind`` (a rule's wildcard
    constraint), or nothing at all when there are none."""
    keys = [m for m, entry in config["models"].items() if kind in entry]
    return wildcard_pattern(keys) if keys else "(?!)"


def grid(config: dict) -> dict:
    """The config with each swept variant replaced by its points: what the rules run. The
    other sections, and unswept variants, are the config's own."""
    return {**config, "variants": sweep.expand(config["variants"])}


def method_of(config: dict, variant: str):
    """The variant's method (``steering.methods``)."""
    return get_method(config["variants"][variant].get("method", DEFAULT))


def is_trained(config: dict, variant: str) -> bool:
    return method_of(config, variant).trains


def runs(config: dict) -> list[Run]:
    """Every run of the grid, in a stable order."""
    out = []
    for model in config["models"]:
        for dataset in config["datasets"]:
            for variant in config["variants"]:
                seeds = config["seeds"] if is_trained(config, variant) else config["seeds"][:1]
                out.extend(Run(model, dataset, variant, int(seed)) for seed in seeds)
    return out


def wildcard_pattern(keys) -> str:
    """A regex accepting exactly these config keys (for wildcard constraints)."""
    return "|".join(re.escape(str(k)) for k in keys)


def model_name(config: dict, model: str) -> str:
    """What ``--model-name`` gets: the built tiny model's directory, or the configured name."""
    entry = config["models"][model]
    return tiny_model_dir(model) if is_built(entry) else entry["name"]


DEFAULT_MEM_MB = 16000  # a job's host memory when its model's config cannot be read


def host_mem_mb(config: dict, model: str, processes: int) -> int:
    """Host memory (MB) of a job on ``model`` from the memory plan (``steering/training/memory.py``:
    each process's copy of the weights while loading, plus runtime), or the default when the
    model's config is not readable yet (a hub model outside the local cache, a tiny model
    the pipeline has not built)."""
    from steering.runtime.precision import FROM_DTYPE
    from steering.training import memory

    entry = config["models"][model]
    found = memory.read_config(tiny_model_dir(model) if is_built(entry) else entry["name"])
    if found is None:
        return DEFAULT_MEM_MB
    precision = placement.model_setting(config, model, "precision", None)
    dtype = entry.get("dtype") or config.get("training", {}).get("dtype") or "float32"
    needed = memory.host_bytes(memory.shape_of(found), precision or FROM_DTYPE[dtype], processes)
    return -(-needed // 10**9) * 1000  # whole GB, in MB


def train_mem_mb(config: dict, model: str, variant: str) -> int:
    """The train rule's ``mem_mb``: one process per GPU (DDP, FSDP), each loading the model."""
    return host_mem_mb(config, model, placement.train_gpus(config, model, variant))


def eval_mem_mb(config: dict, model: str) -> int:
    """The evaluate rule's ``mem_mb``: one process, however many GPUs it spreads over."""
    return host_mem_mb(config, model, 1)


def model_input(config: dict):
    """What a job on a model waits for: the built (tiny or converted) model's config (a pattern in
    ``{model}`` when every model is built, nothing when none is; else a function)."""
    tiny = [is_built(entry) for entry in config["models"].values()]
    if all(tiny):
        return [f"{tiny_model_dir('{model}')}/config.json"]
    if not any(tiny):
        return []
    return lambda wildcards: model_inputs(config, wildcards.model)


def run_settings(config: dict, dataset: str, variant: str) -> dict[str, Any]:
    """Training settings: config ``training``, then the dataset's, then the variant's."""
    merged = dict(config.get("training", {}))
    for source in (config["datasets"][dataset], config["variants"][variant]):
        merged.update({k: v for k, v in source.items() if k in TRAINING_KEYS and v is not None})
    return merged


# The keys a dataset or variant may set over ``training``: every training method's
# (``methods.base.TRAINING``) and the run's own.
TRAINING_KEYS = (
    *TRAINING,
    *OBJECTIVE,
    "dtype",
    "eval_batch_size",
    "max_train_samples",
    "max_eval_samples",
    "device",
    "save_steps",
)


def _common(
    config: dict, model: str, dataset: str, settings: dict, device: bool = True
) -> list[str]:
    args = [
        "--model-name",
        model_name(config, model),
        "--dataset-name",
        dataset,
        "--data-dir",
        data_dir(dataset),
        "--no-progress",
    ]
    precision = placement.model_setting(config, model, "precision", None)
    dtype = config["models"][model].get("dtype") or settings.get("dtype")
    if precision:  # the newer key; --dtype stays for configs without it (their params)
        args += ["--precision", precision]
    elif dtype:
        args += ["--dtype", dtype]
    # only when asked: the other runs keep their params
    if placement.model_setting(config, model, "single_bos", False):
        args.append("--single-bos")
    return args + (_flags(settings, ("device",)) if device else [])


def _flags(settings: dict, keys) -> list[str]:
    out = []
    for key in keys:
        if settings.get(key) is not None:
            out += [f"--{key.replace('_', '-')}", str(settings[key])]
    return out


def train_script(config: dict, variant: str) -> str:
    """The script a variant trains with (its method's: train_joint.py for joint)."""
    return method_of(config, variant).script


# A grpo block's keys (config/schema.yaml), in the order their flags are passed.
GRPO_KEYS = (
    "num_generations",
    "max_prompt_length",
    "max_completion_length",
    "max_steps",
    "reward_weights",
)


def train_args(config: dict, model: str, dataset: str, variant: str, seed: int | str) -> str:
    """The quoted arguments of the variant's training script for one run."""
    v = config["variants"][variant]
    s = run_settings(config, dataset, variant)
    run = run_dir(model, dataset, variant, seed)
    args = _common(config, model, dataset, s)
    args += [
        "--seed",
        str(seed),
        "--output-dir",
        f"{run}/checkpoint",
        "--train-log",
        f"{run}/train_log.jsonl",
    ]
    args += _flags(s, ("lr", "warmup_ratio", "weight_decay", "epochs"))
    bs, accum = placement.batch(config, model, variant, s)
    args += ["--bs", str(bs)] if s.get("bs") is not None or bs != placement.BS else []
    args += ["--grad-accum", str(accum)] if accum != placement.GRAD_ACCUM else []  # keep params
    args += _flags(s, ("max_train_samples",))
    if s.get("length_grouping"):  # only when asked: the official order's runs keep their params
        args.append("--length-grouping")
    if not s.get("packing", True):  # only when asked: packed runs keep their params
        args.append("--no-packing")
    if s.get("logits", "supervised") != "supervised":  # the default's runs keep their params
        args += ["--logits", s["logits"]]
    if s.get("objective", "sft") == "grpo":  # only when asked: supervised runs keep their params
        args += ["--objective", "grpo"]
        block = s.get("grpo") or {}
        # in a fixed order: a config rewritten with its keys in another order (a YAML dump
        # sorts them) keeps its jobs' params, so Snakemake reruns nothing
        for key in sorted(block, key=GRPO_KEYS.index):
            args.append(f"--{key.replace('_', '-')}")
            if key == "reward_weights":  # {name: weight} -> NAME=W ..., by name
                args += [f"{name}={weight}" for name, weight in sorted(block[key].items())]
            else:
                args.append(str(block[key]))
    # Interrupted jobs resume from here: not an output, so Snakemake keeps it after a failure.
    args += ["--resume-dir", f"{run}/resume", "--save-steps", str(s.get("save_steps", 100))]
    method = method_of(config, variant)
    args += method.train_flags(v)
    if placement.sharding(config, model, variant) == "fsdp":
        args += ["--sharding", "fsdp"]  # only when asked: other runs keep their params
    return shlex.join(args)


def eval_args(config: dict, model: str, dataset: str, variant: str, seed: int | str) -> str:
    """The quoted arguments of scripts/inference.py for one run (all configured splits)."""
    s = run_settings(config, dataset, variant)
    run = run_dir(model, dataset, variant, seed)
    spread = placement.eval_gpus(config, model) > 1 or config["models"][model].get("device_map")
    # a spread model has no one device: --device and --device-map exclude each other
    args = _common(config, model, dataset, s, device=not spread)
    if is_trained(config, variant):
        args += ["--ckpt-path", f"{run}/checkpoint"]
    args += _flags(s, ("eval_batch_size", "max_eval_samples"))
    if spread:
        args += ["--device-map", config["models"][model].get("device_map") or "auto"]
    args += ["--split", *config["splits"], "--output-dir", run, "--seed", str(seed)]
    return shlex.join(args)


def headline(path: str) -> str:
    """The report's headline (reStructuredText the aggregation wrote), or "" before it ran."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError:
        return ""


def aggregate_flags(config: dict) -> str:
    """The aggregation's optional flags from the config: ``--compare-to`` when set."""
    target = config.get("compare_to")
    return shlex.join(["--compare-to", target]) if target else ""


def references(config: dict) -> str:
    """JSON of the paper names the config maps its models and variants to (for the tables)."""
    return json.dumps(
        {
            "models": {k: v["paper"] for k, v in config["models"].items() if v.get("paper")},
            "variants": {k: v["paper"] for k, v in config["variants"].items() if v.get("paper")},
        },
        sort_keys=True,
    )


def data_args(config: dict, dataset: str) -> str:
    """The quoted arguments of scripts/prepare_data.py for one dataset."""
    d = config["datasets"][dataset]
    args = ["--dataset-name", dataset, "--out", data_dir(dataset)]
    source = d.get("source", "hub")
    if source == "synthetic":
        args += [
            "--synthetic",
            "--seed",
            str(d.get("synthetic_seed", 0)),
            "--scale",
            str(d.get("synthetic_scale", 1.0)),
        ]
    elif source == "local":
        args += ["--data-dir", d["data_dir"]]
    return shlex.join(args)


def tiny_model_args(config: dict, model: str) -> str:
    """The quoted arguments of scripts/make_tiny_model.py for a ``tiny:`` model entry."""
    t = config["models"][model]["tiny"]
    args = ["--arch", t.get("arch", "llama"), "--out", tiny_model_dir(model)]
    for key in ("hidden_size", "layers", "vocab_size", "init_std", "seed"):
        if t.get(key) is not None:
            args += [f"--{key.replace('_', '-')}", str(t[key])]
    return shlex.join(args)


def gguf_model_args(config: dict, model: str) -> str:
    """The quoted arguments of scripts/convert_gguf.py for a ``gguf:`` model entry."""
    g = config["models"][model]["gguf"]
    where = (
        ["--gguf", g["path"]] if "path" in g else ["--package", g["package"], "--file", g["file"]]
    )
    out = ["--out", tiny_model_dir(model), "--dtype", g.get("dtype", "float32")]
    return shlex.join(where + out)


def gguf_model_input(config: dict, model: str) -> list[str]:
    """A ``gguf: {path}`` entry's file (a rerun when it changes); a package's is installed."""
    g = config["models"][model]["gguf"]
    return [g["path"]] if "path" in g else []


def model_inputs(config: dict, model: str) -> list[str]:
    """Files a job on ``model`` waits for: the built model, if the pipeline builds it."""
    return [f"{tiny_model_dir(model)}/config.json"] if is_built(config["models"][model]) else []


def checkpoint_files(run: str) -> list[str]:
    return [f"{run}/checkpoint"]  # a directory output of the train rule


def evaluate_inputs(config: dict, model: str, dataset: str, variant: str, seed) -> list[str]:
    """What an evaluation job waits for: the data, the built model, and the checkpoint."""
    inputs = [f"{data_dir(dataset)}/manifest.json", *model_inputs(config, model)]
    if is_trained(config, variant):
        inputs += checkpoint_files(run_dir(model, dataset, variant, seed))
    return inputs


def evaluate_checkpoint(config: dict):
    """The checkpoint an evaluation job waits for: a pattern when every variant is trained,
    else a function (a ``base`` variant evaluates the untrained model, with no checkpoint)."""
    if all(is_trained(config, v) for v in config["variants"]):
        return checkpoint_files(run_dir("{model}", "{dataset}", "{variant}", "{seed}"))

    def checkpoint(w) -> list[str]:
        trained = is_trained(config, w.variant)
        return checkpoint_files(run_dir(w.model, w.dataset, w.variant, w.seed)) if trained else []

    return checkpoint


def metrics_files(config: dict) -> list[str]:
    """Every ``<split>.metrics.json`` the grid produces (the aggregation's inputs)."""
    return [f"{r.dir}/{split}.metrics.json" for r in runs(config) for split in config["splits"]]
