"""The cost of a pipeline grid before it is submitted: per model and variant, its jobs, the
memory one training job needs per GPU (``steering/training/memory.py``), the GPUs it asks for, and
GPU-hours (no torch; ``scripts/plan.py`` prints it).

GPU-hours, from the real data's size (``Task.public_rows`` x the tokens a row feeds) and these
assumptions, all stated in the table's notes:

- training: 6 P FLOPs a token fed when every weight trains (full fine-tuning), 4 P when the
  base is frozen (the forward pass, and the backward pass for activations only); at ``mfu`` of
  the GPU's dense peak for the precision (fp32: its CUDA-core peak, tf32 / bf16: tensor
  cores). The tokens fed are the real ones (truncated at the max length) when batches are
  packed, and include each batch's padding to its longest row when they are not
  (``packing: false``, a refused method or architecture, length grouping): simulated from the
  task's length profile (``steering/pipeline/padding.py``);
- evaluation: the prompt at 2 P FLOPs a token (same rate), then ``max_new_tokens`` decoding
  steps per batch of ``eval_batch_size`` rows, each step reading the weights once at
  ``bandwidth_use`` of the GPU's memory bandwidth (decoding is memory-bound);
- GRPO training (``objective: grpo``): ``max_steps`` steps, each generating bs x 4 x GPUs
  completions of ``max_completion_length`` tokens (the bound: rollouts stop at EOS) after
  prompts of the task's mean length: the prompts at 2 P FLOPs a token, the completions
  decoded one step at a time reading the weights once per step on every GPU (as evaluation
  decodes), and the scoring pass over prompt and completion at 6 P or 4 P FLOPs a token (as
  training);
- fixed costs, per job (training or evaluation): ``startup_s`` seconds to start the process
  (interpreter, imports, CUDA context) plus the model load, its weights on disk (2 bytes a
  parameter: the paper's models are published in bfloat16) read at ``disk_gbps`` GB/s;
- a job's GPU-hours are its time (fixed costs included) times the GPUs it holds.

Models: their ``config.json`` (directory, hub cache), else the shapes shipped for the paper's
models (``steering/loading/public_configs.py``), so a plan needs no download.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import SimpleNamespace

from steering.pipeline import placement
from steering.training import memory

# Dense peaks (TFLOP/s: fp32 CUDA cores, tf32 and bf16 tensor cores) and HBM bandwidth (TB/s)
# of common GPUs, from their vendors' data sheets; memory: as torch reports it, the figure a
# job checks against (``memory.GPU_MEMORY``).
GPUS = {
    "h200": {"fp32": 67, "tf32": 495, "bf16": 989, "bandwidth": 4.8},
    "h100": {"fp32": 67, "tf32": 495, "bf16": 989, "bandwidth": 3.35},
    "a100": {"fp32": 19.5, "tf32": 156, "bf16": 312, "bandwidth": 2.0},
}
for _kind, _spec in GPUS.items():
    _spec["memory"] = memory.GPU_MEMORY[_kind]


@dataclass(frozen=True)
class Assumptions:
    gpu: str = "h100"
    mfu: float = 0.35  # achieved share of the dense peak in training and prefill
    bandwidth_use: float = 0.6  # achieved share of the memory bandwidth when decoding
    startup_s: float = 30.0  # a job's start: interpreter, imports, CUDA context
    disk_gbps: float = 2.0  # GB/s reading the weights (a local NVMe; a network file system less)

    @property
    def spec(self) -> dict:
        return GPUS[self.gpu]


def measured_bandwidth_use(results: dict[str, dict], gpu: str, batch: int = 16):
    """(share of ``gpu``'s spec bandwidth a decoding step achieved, the result's name) from
    ``benchmarks/decode_step.py`` results on that GPU (name -> loaded JSON), at the largest
    measured batch up to ``batch`` (the default evaluation batch); None when none was run
    there, and the plan keeps its assumption."""
    spec_bytes_s = GPUS[gpu]["bandwidth"] * 1e12
    for name, result in sorted(results.items()):
        device = str(result.get("machine", {}).get("device", "")).lower()
        rows = [r for r in result.get("rows", []) if r.get("batch", batch + 1) <= batch]
        if gpu not in device or not rows or "weight_bytes" not in result:
            continue
        row = max(rows, key=lambda r: r["batch"])
        step_s = row["step_ms_dynamic"] / 1e3
        return min(1.0, result["weight_bytes"] / step_s / spec_bytes_s), name
    return None


def train_hours(shape, full: bool, task, epochs: float, fed: float, precision: str, a) -> float:
    """Wall hours of one training run on one GPU's worth of compute (``fed``: the tokens a
    batch feeds per row, padding included: ``padding.tokens_per_row``)."""
    tokens = task.public_rows.get("train", 0) * fed * epochs
    flops = (6 if full else 4) * shape.parameters() * tokens
    return flops / (a.mfu * a.spec[precision] * 1e12) / 3600


def grpo_hours(shape, full: bool, task, g, bs: int, gpus: int, precision: str, a) -> float:
    """GPU-hours of one GRPO run (``g``: its ``GRPOSettings``; ``gpus``: processes)."""
    completions = bs * 4 * gpus  # a step's generation batch over every process
    prompt = min(task.mean_tokens, g.max_prompt_length)
    tokens = completions * (prompt + g.max_completion_length)
    flops = completions * prompt * 2 * shape.parameters()  # the rollouts' prefill
    flops += (6 if full else 4) * shape.parameters() * tokens  # the scoring pass
    compute = flops / (a.mfu * a.spec[precision] * 1e12)
    weight_bytes = shape.parameters() * (2 if precision == "bf16" else 4)
    decode = g.max_completion_length * weight_bytes / (a.bandwidth_use * a.spec["bandwidth"] * 1e12)
    return g.max_steps * (compute + decode * gpus) / 3600


def fixed_seconds(shape, a: Assumptions) -> float:
    """A job's fixed cost: start-up, then loading the weights (2 bytes a parameter on disk)."""
    return a.startup_s + 2 * shape.parameters() / (a.disk_gbps * 1e9)


def eval_hours(shape, task, splits, precision: str, batch: int, a: Assumptions) -> float:
    """Wall hours of evaluating ``splits`` of ``task`` (prompt, then greedy decoding)."""
    rows = sum(task.public_rows.get(s, 0) for s in splits)
    prefill = 2 * shape.parameters() * rows * task.mean_tokens / (a.mfu * a.spec[precision] * 1e12)
    weight_bytes = shape.parameters() * (2 if precision == "bf16" else 4)
    step = weight_bytes / (a.bandwidth_use * a.spec["bandwidth"] * 1e12)
    decode = math.ceil(rows / batch) * task.max_new_tokens * step
    return (prefill + decode) / 3600


@dataclass
class Row:
    model: str
    variant: str
    method: str
    train_jobs: int
    eval_jobs: int
    memory: int | None  # bytes per GPU of the largest training job (None: unknown)
    gpus: int  # GPUs of one training job
    fits: bool | None
    gpu_hours: float | None  # fixed costs included
    fixed_hours: float | None = None  # the GPU-hours of start-up and model loads alone
    fed_over_real: float | None = None  # training tokens fed / real tokens (1: packed)


@dataclass
class TrainJob:
    """One training job as its memory check sees it (every seed's job is the same)."""

    model: str
    dataset: str
    variant: str  # the grid's: a point of a sweep
    settings: SimpleNamespace  # what memory.for_training reads of TrainSettings
    gpus: int
    estimate: memory.Estimate | None


def plan(config: dict, a: Assumptions) -> list[Row]:
    """One row per model and variant (its sweep points summed) of a validated, default-filled
    pipeline config."""
    from steering.pipeline import jobs

    grid = jobs.grid(config)
    seeds = len(config["seeds"])
    capacity = a.spec["memory"]
    rows = []
    for model in config["models"]:
        shape = model_shape(config, model)
        for variant in config["variants"]:
            points = [n for n in grid["variants"] if sweep_of(n) == variant]
            method = jobs.method_of(grid, points[0])
            runs = len(points) * (seeds if method.trains else 1) * len(config["datasets"])
            trains = runs if method.trains else 0
            gpus = max(placement.train_gpus(grid, model, p) for p in points)
            row = Row(model, variant, method.name, trains, runs, None, gpus, None, None)
            if shape is not None:
                _cost(row, shape, grid, points, method, seeds, capacity, a)
            rows.append(row)
    return rows


def unprofiled(config: dict) -> list[str]:
    """The config's datasets whose task has no measured length profile (charged no padding)."""
    from steering.tasks import get_task

    return [d for d in config["datasets"] if not get_task(d).length_quantiles]


def model_shape(config: dict, model: str) -> memory.Shape | None:
    """The model's shape from its config.json or the shipped shapes (None: a model the
    pipeline builds, or one with neither)."""
    from steering.pipeline import jobs

    entry = config["models"][model]
    found = None if jobs.is_built(entry) else memory.read_config(entry["name"])
    return memory.shape_of(found) if found else None


def train_jobs(grid: dict, model: str, shape: memory.Shape, points, dataset: str):
    """The training jobs of ``model`` on ``dataset`` for these points, with their estimates:
    the settings the pipeline gives each job (``jobs.train_args``) as the job's memory
    check reads them, before its data is tokenized (the logits of every position)."""
    from steering.architectures import uses_chat_template
    from steering.pipeline import jobs
    from steering.tasks import get_task

    tokens = get_task(dataset).max_length_for(uses_chat_template(shape.model_type))
    for point in points:
        method = jobs.method_of(grid, point)
        if not method.trains:
            continue
        entry = grid["variants"][point]
        s = jobs.run_settings(grid, dataset, point)
        bs, accum = placement.batch(grid, model, point, s)
        settings = SimpleNamespace(
            method=method.name,
            options=method.check_options(method.options_from_entry(entry)),
            steering=method.steering_from_entry(entry),
            precision=_precision(grid, model),
            bs=bs,
            grad_accum=accum,
            sharding=placement.sharding(grid, model, point),
            logits=s.get("logits", "supervised"),
        )
        gpus = placement.train_gpus(grid, model, point)
        grpo = None
        if s.get("objective", "sft") == "grpo":  # the GRPO flags' defaults, then the block
            from steering.training.grpo_settings import GRPOSettings

            block = {k: v for k, v in (s.get("grpo") or {}).items() if k != "reward_weights"}
            grpo = GRPOSettings(
                **{"max_completion_length": get_task(dataset).max_new_tokens, **block}
            )
        settings.grpo = grpo
        found = memory.for_training(settings, shape, tokens, gpus, grpo=grpo)
        yield TrainJob(model, dataset, point, settings, gpus, found)


def sweep_of(run: str) -> str:
    from steering.pipeline.sweep import split_run_name

    return split_run_name(run)[0]


def _cost(row, shape, grid, points, method, seeds, capacity, a) -> None:
    from steering.pipeline import jobs
    from steering.tasks import get_task

    precision = _precision(grid, row.model)
    worst, hours, real, fed = 0, 0.0, 0.0, 0.0
    for dataset in grid["datasets"]:
        task = get_task(dataset)
        for job in train_jobs(grid, row.model, shape, points, dataset):
            if job.estimate is None:
                row.memory = None
                return
            worst = max(worst, job.estimate.total)
            full = (
                method.estimate(shape, job.settings.options, job.settings.steering)
                == shape.parameters()
            )
            if job.settings.grpo is not None:
                g, bs = job.settings.grpo, job.settings.bs
                hours += seeds * grpo_hours(shape, full, task, g, bs, job.gpus, precision, a)
                continue
            epochs, per_row = _epoch_tokens(grid, task, job, shape, method)
            rows = task.public_rows.get("train", 0) * epochs
            real, fed = real + rows * per_row[0], fed + rows * per_row[1]
            hours += seeds * train_hours(shape, full, task, epochs, per_row[1], precision, a)
        for point in points:
            batch = jobs.run_settings(grid, dataset, point).get("eval_batch_size", 16)
            runs = seeds if method.trains else 1
            evals = runs * eval_hours(shape, task, grid["splits"], precision, batch, a)
            hours += evals * placement.eval_gpus(grid, row.model)
    fixed = row.train_jobs * row.gpus + row.eval_jobs * placement.eval_gpus(grid, row.model)
    row.fixed_hours = fixed * fixed_seconds(shape, a) / 3600
    row.memory = worst or None
    row.fed_over_real = fed / real if real else None
    row.fits = worst <= capacity if method.trains else None
    row.gpu_hours = hours + row.fixed_hours


def _epoch_tokens(grid: dict, task, job: TrainJob, shape, method) -> tuple[float, tuple]:
    """A supervised job's epochs, and its (real, fed) tokens per row: real when its batches
    are packed, padded to each batch's longest row when not (``padding.tokens_per_row``)."""
    from steering.architectures import uses_chat_template
    from steering.pipeline import jobs, padding
    from steering.training import packing

    s, st = jobs.run_settings(grid, job.dataset, job.variant), job.settings
    refused = packing.refusal(shape.model_type, method, st.options, st.steering)
    window = st.bs * st.grad_accum * job.gpus  # the rows length grouping sorts together
    max_length = task.max_length_for(uses_chat_template(shape.model_type))
    layout = padding.layout(s, refused)
    return s.get("epochs") or task.epochs, padding.tokens_per_row(
        task, max_length, layout, st.bs, window
    )


def _precision(config: dict, model: str) -> str:
    from steering.runtime.precision import FROM_DTYPE

    precision = placement.model_setting(config, model, "precision", None)
    dtype = config["models"][model].get("dtype") or config.get("training", {}).get("dtype")
    return precision or FROM_DTYPE.get(dtype or "float32", "fp32")
