"""The pipeline's oracle-shift analysis jobs, from a config's optional ``analysis`` block (no
torch: the DAG is planned without it).

    analysis: {datasets: [ARC_Challenge], rows: 64, ranks: [1, 8, 64]}

adds, per model and listed dataset, one job after training: ``scripts/analyze.py`` on the
model, its ``full`` run (the variant of method ``full``, or the one ``full:`` names) and the
checkpoints of its post-block steering and LoRA runs (every trained point of those methods,
or the variants ``variants:`` lists), all of the first seed, into
``results/analysis/{model}/{dataset}/`` (``steering/analysis/run.py``). It waits for those runs'
validation metrics too, so the table has their accuracy beside their KL.
"""

from __future__ import annotations

import shlex
from typing import Any

from steering.pipeline import jobs as grid_jobs
from steering.pipeline import placement, sweep

RESULTS = f"{grid_jobs.RESULTS}/analysis"
DEFAULTS = {"rows": 64, "ranks": [1, 8, 64], "batch_rows": 8, "full": None, "variants": None}
TABLES = ("layers.csv", "approximations.csv")
PLOTS = ("effective_rank.png", "mlp_share.png", "kl.png")
ADAPTER_METHODS = ("steering", "lora")


def settings(config: dict) -> dict[str, Any] | None:
    """The ``analysis`` block with its defaults, or None when the config has none."""
    block = config.get("analysis")
    return None if block is None else {**DEFAULTS, **block}


def out_dir(model: str, dataset: str) -> str:
    return f"{RESULTS}/{model}/{dataset}"


def jobs(grid: dict) -> list[tuple[str, str]]:
    """(model, dataset) of every analysis job."""
    s = settings(grid)
    if s is None:
        return []
    return [(m, d) for m in grid["models"] for d in s["datasets"] if d in grid["datasets"]]


def outputs(grid: dict) -> list[str]:
    return [
        f"{out_dir(m, d)}/{name}"
        for m, d in jobs(grid)
        for name in (*TABLES, "summary.json", *PLOTS)
    ]


def _method(grid: dict, variant: str) -> str:
    return grid_jobs.method_of(grid, variant).name


def full_variant(grid: dict) -> str | None:
    """The full fine-tuning run the oracle compares with (None when there is none or more
    than one and the block names none)."""
    chosen = (settings(grid) or {}).get("full")
    if chosen:
        return chosen
    found = [v for v in grid["variants"] if _method(grid, v) == "full"]
    return found[0] if len(found) == 1 else None


def adapter_runs(grid: dict) -> list[str]:
    """The runs (variants or sweep points) whose checkpoints are plugged in."""
    chosen = (settings(grid) or {}).get("variants")
    out = []
    for run in grid["variants"]:
        if _method(grid, run) not in ADAPTER_METHODS:
            continue
        if chosen is None or run in chosen or sweep.split_run_name(run)[0] in chosen:
            out.append(run)
    return out


def _seed(grid: dict) -> int:
    return int(grid["seeds"][0])


def inputs(grid: dict, model: str, dataset: str) -> list[str]:
    """The data, the built model, the full run's and the adapters' checkpoints, and their
    validation metrics."""
    seed = _seed(grid)
    runs = [full_variant(grid), *adapter_runs(grid)]
    found = [f"{grid_jobs.data_dir(dataset)}/manifest.json", *grid_jobs.model_inputs(grid, model)]
    for run in runs:
        where = grid_jobs.run_dir(model, dataset, run, seed)
        found += grid_jobs.checkpoint_files(where)
        if "validation" in grid["splits"]:
            found.append(f"{where}/validation.metrics.json")
    return found


def args(grid: dict, model: str, dataset: str) -> str:
    """The quoted arguments of ``scripts/analyze.py`` for one (model, dataset)."""
    s, seed = settings(grid), _seed(grid)
    full = grid_jobs.run_dir(model, dataset, full_variant(grid), seed)
    out = [
        "--base",
        grid_jobs.model_name(grid, model),
        "--finetuned",
        f"{full}/checkpoint",
        "--dataset",
        dataset,
        "--data-dir",
        grid_jobs.data_dir(dataset),
        "--rows",
        str(s["rows"]),
        "--ranks",
        *map(str, s["ranks"]),
        "--batch-rows",
        str(s["batch_rows"]),
        "--out",
        out_dir(model, dataset),
    ]
    for run in adapter_runs(grid):
        out += ["--adapter", run, f"{grid_jobs.run_dir(model, dataset, run, seed)}/checkpoint"]
    precision = placement.model_setting(grid, model, "precision", None)
    dtype = grid["models"][model].get("dtype") or grid.get("training", {}).get("dtype")
    if precision == "bf16" or dtype == "bfloat16":
        out += ["--dtype", "bfloat16"]
    device = grid.get("training", {}).get("device")
    if device:
        out += ["--device", device]
    if placement.model_setting(grid, model, "single_bos", False):
        out.append("--single-bos")
    return shlex.join(out)


def hidden_size(config: dict, model: str) -> int | None:
    """H of a model when the config or its local ``config.json`` says (else None)."""
    entry = config["models"][model]
    if "tiny" in entry:
        return int(entry["tiny"].get("hidden_size", 64))
    from steering.training import memory

    found = memory.read_config(entry["name"])
    if not found:
        return None
    text = found.get("text_config") or found
    return text.get("hidden_size")


def problems(config: dict) -> list[str]:
    """What the ``analysis`` block of a schema-valid config cannot mean (for
    ``steering.pipeline.grid_config``): datasets the config does not train, no (or an ambiguous)
    ``full`` run, variants that are no steering or LoRA run, ranks above a model's H."""
    s = settings(config)
    if s is None:
        return []
    grid = {**config, "variants": sweep.expand(config["variants"])}
    out = []
    missing = [d for d in s["datasets"] if d not in config["datasets"]]
    if missing:
        out.append(
            f"analysis.datasets: {missing} have no runs (not under datasets: "
            f"{list(config['datasets'])}); add them there or remove them here"
        )
    fulls = [v for v in grid["variants"] if _method(grid, v) == "full"]
    if s.get("full"):
        if s["full"] not in fulls:
            out.append(
                f"analysis.full: {s['full']!r} is not a variant of method full; those are {fulls}"
            )
    elif not fulls:
        out.append(
            "analysis: no variant of method full, so no dataset has a full run for the oracle to "
            "reproduce; add one (variants: {full: {method: full}})"
        )
    elif len(fulls) > 1:
        out.append(f"analysis: several full variants {fulls}; name one as analysis.full")
    for name in s.get("variants") or []:
        runs = [v for v in grid["variants"] if v == name or sweep.split_run_name(v)[0] == name]
        if not runs or _method(grid, runs[0]) not in ADAPTER_METHODS:
            out.append(
                f"analysis.variants: {name!r} is no steering or LoRA variant of this config; "
                f"those are {sorted({sweep.split_run_name(v)[0] for v in adapter_runs(grid)})}"
            )
    for model in config["models"]:
        h = hidden_size(config, model)
        high = [r for r in s["ranks"] if h is not None and r > h]
        if high:
            out.append(
                f"analysis.ranks: {high} exceed model {model}'s hidden size H={h}; use ranks <= H"
            )
    return out
