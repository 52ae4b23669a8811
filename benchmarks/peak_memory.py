"""Benchmark: peak memory of steering training, and that the base model is held only once.

    python benchmarks/peak_memory.py                          # GPU: Llama-3.1-8B, bf16, 8 x 256
    python benchmarks/peak_memory.py --batch 1 --seq-len 64   # CPU

A random-weight Llama of the shape (built from its config) gets rank-r SiLU steering and
trains ``--steps`` optimizer steps with the package's own Trainer (``SteeringTrainer`` with
the protocol's TrainingArguments, AdamW) on random token rows. Memory is read at each stage:
- GPU: ``torch.cuda.memory_allocated`` and ``max_memory_allocated`` (tensors only);
- CPU: the process's resident set (``VmRSS``; the peak ``VmHWM``), less the resident set
  before the model was built (the interpreter and libraries).
"Loaded once" holds when what stays resident after training, less the weights, is far
below one more copy of the weights (adapters, AdamW state and allocator slack only).
Writes benchmarks/results/peak_memory_<cpu|gpu>_<shape>.json.
"""

import argparse
import gc
import tempfile
from pathlib import Path

import harness
import torch
from datasets import Dataset

from steering import SteeredModel, SteeringConfig
from steering.data import Collator
from steering.runtime.precision import FROM_DTYPE, trainable_dtype
from steering.training.run import TrainSettings
from steering.training.trainer import SteeringTrainer, training_arguments

GIB = 2**30


class Meter:
    """Bytes in use now and at peak: CUDA tensors, or the process's resident set on CPU."""

    def __init__(self, device: str) -> None:
        self.cuda = device.startswith("cuda")
        self.floor = 0 if self.cuda else self._status("VmRSS")

    @staticmethod
    def _status(key: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
        raise SystemExit(f"/proc/self/status has no {key}; the CPU meter needs Linux")

    def now(self) -> int:
        if self.cuda:
            torch.cuda.synchronize()
            return torch.cuda.memory_allocated()
        return self._status("VmRSS") - self.floor

    def peak(self) -> int:
        if self.cuda:
            return torch.cuda.max_memory_allocated()
        return self._status("VmHWM") - self.floor


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    harness.add_shape_arguments(p, "llama-3.1-8b", "bfloat16", batch=8)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--rank", type=int, default=8)
    harness.add_common_arguments(p, repeats=None)
    a = p.parse_args()

    meter = Meter(a.device)
    base = harness.build_model(a.shape, a.dtype, a.device)
    gc.collect()
    weights = sum(t.numel() * t.element_size() for t in (*base.parameters(), *base.buffers()))
    stages = {"model built": meter.now()}
    precision = FROM_DTYPE[a.dtype]  # bf16: the base in bfloat16, the adapters in float32
    model = SteeredModel(base, SteeringConfig(rank=a.rank), trainable_dtype(precision))
    stages["steering attached"] = meter.now()

    ids, _, _ = harness.random_batch(base.config.vocab_size, a.batch * a.steps, a.seq_len, "cpu")
    rows = [r.tolist() for r in ids]
    ones = [[1] * a.seq_len for _ in rows]
    lengths = [a.seq_len] * len(rows)
    data = Dataset.from_dict(
        {"input_ids": rows, "attention_mask": ones, "labels": rows, "length": lengths}
    )
    settings = TrainSettings(
        model_name=a.shape,
        dataset_name="GSM8K",
        steering=model.steering_config,
        bs=a.batch,
        grad_accum=1,
        precision=precision,
        device=a.device,
        progress=False,
        logging_steps=1,
    )
    with tempfile.TemporaryDirectory(prefix="peak-memory-") as tmp:
        args = training_arguments(settings, tmp, epochs=1)
        trainer = SteeringTrainer(
            model=model, args=args, train_dataset=data, data_collator=Collator(0)
        )
        stages["trainer built"] = meter.now()
        if meter.cuda:
            torch.cuda.reset_peak_memory_stats()
        result = trainer.train()
    gc.collect()
    stages["after training"] = meter.now()
    peak = meter.peak()
    loss = result.training_loss
    if not torch.isfinite(torch.tensor(loss)):
        raise SystemExit(f"training loss is {loss}; the measurement is not of a working run")
    kept = stages["after training"] - weights
    row = {
        "shape": a.shape,
        "parameters": harness.count_parameters(base),
        "dtype": a.dtype,
        "batch": f"{a.batch}x{a.seq_len}",
        "weights_gib": round(weights / GIB, 3),
        **{f"{k.replace(' ', '_')}_gib": round(v / GIB, 3) for k, v in stages.items()},
        "peak_gib": round(peak / GIB, 3),
        "peak_over_weights": round(peak / weights, 3),
        "loaded_once": kept < 0.5 * weights,
    }
    harness.print_table([row], list(row))
    print(
        f"peak {peak / GIB:.2f} GiB for {weights / GIB:.2f} GiB of weights; after training "
        f"{kept / GIB:+.3f} GiB beyond the weights (loaded once: {row['loaded_once']})"
    )
    harness.write_result(
        harness.result_path(a.out, "peak_memory", a.device, a.shape),
        "peak memory of steering training (real SteeringTrainer), base held once",
        {k: v for k, v in vars(a).items() if k != "out"},
        [row],
        meter="cuda memory_allocated" if meter.cuda else "process resident set (VmRSS/VmHWM)",
        train_loss=loss,
        bytes={"weights": weights, **stages, "peak": peak},
    )


if __name__ == "__main__":
    main()
