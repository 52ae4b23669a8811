"""Benchmark: a steering training step (forward + backward, post-block r=8) with the LM head on
the supervised positions only (``--logits supervised``, steering/training/logits.py) against today's
step with the head on every position (``--logits all``), side by side in one run, on

- ``smollm2``: the real SmolLM2-135M-Instruct (``--model``, default .cache/models/smollm2-135m)
  on real ARC-Challenge training rows (``--arc-dir``: prepared splits or the source files),
  tokenized as training tokenizes them, batches of ``--batch`` rows in the official order;
- ``llama-3.2-1b``: the Llama-3.2-1B shape with random weights, fed the same token rows (any
  shape of ``harness.SHAPES`` can be named; ``llama-tiny`` keeps the smoke test fast).

    python benchmarks/logits_step.py --arc-dir DIR [--model DIR --batch 8 --shapes smollm2 ...]

The two sides' losses are checked equal. Target: supervised / all <= 0.85. Writes
benchmarks/results/logits_step_<cpu|gpu>_<first shape>.json.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import harness
import torch

from steering.config import SteeringConfig
from steering.model import SteeredModel
from steering.training.logits import SupervisedHead, loss_of

ROOT = Path(__file__).resolve().parent.parent
CASES = ("smollm2", "llama-3.2-1b")  # the default; choices: "smollm2" and harness.SHAPES


def add_real_model_arguments(p: argparse.ArgumentParser) -> None:
    """``--model`` (SmolLM2-135M-Instruct's directory) and ``--arc-dir`` (real ARC rows)."""
    p.add_argument("--model", type=Path, default=ROOT / ".cache/models/smollm2-135m")
    p.add_argument("--arc-dir", type=Path, required=True, help="ARC-Challenge data directory")


def require_model(model: Path) -> None:
    if not (model / "config.json").is_file():
        sys.exit(
            f"error: no model at {model}: convert SmolLM2-135M-Instruct there "
            "(python scripts/convert_gguf.py, docs/models.md) or pass --model DIR"
        )


def arc_batches(model_dir: Path, arc_dir: Path, batch: int, n: int) -> list[dict]:
    """``n`` batches of real ARC training rows, tokenized and padded as training does."""
    from steering.architectures import uses_chat_template
    from steering.data import Collator, tokenize_split
    from steering.loading.loader import load_tokenizer
    from steering.tasks import get_task
    from steering.training.sampling import TrainingOrder

    task = get_task("ARC_Challenge")
    tokenizer = load_tokenizer(str(model_dir))
    rows = task.load(data_dir=str(arc_dir))["train"]
    model_type = json.loads((model_dir / "config.json").read_text())["model_type"]
    features = tokenize_split(task, rows, tokenizer, chat=uses_chat_template(model_type))
    order = list(TrainingOrder([len(r) for r in features["input_ids"]], seed=42, window=batch))
    collate = Collator(tokenizer.pad_token_id)
    return [collate([features[i] for i in order[k * batch : (k + 1) * batch]]) for k in range(n)]


def steered(base, dtype) -> SteeredModel:
    model = SteeredModel(base.train(), SteeringConfig())
    with torch.no_grad():  # trained-looking adapters (fresh ones are a no-op: W_up = 0)
        g = torch.Generator().manual_seed(0)
        for p in model.adapters.parameters():
            p.copy_((torch.randn(p.shape, generator=g) * 0.02).to(p.dtype))
    return model


def load_case(name: str, a):
    from steering.loading.loader import load_base_model

    if name == "smollm2":
        return load_base_model(str(a.model), a.dtype, a.device)
    return harness.build_model(name, a.dtype, a.device)


def measure(name: str, a, batches: list[dict]) -> dict:
    model = steered(load_case(name, a), a.dtype)
    head = SupervisedHead(model)
    vocab = model.config.vocab_size
    on = [{k: v.to(a.device) for k, v in b.items()} for b in batches]
    count = {"i": 0}

    def side(restrict: bool):
        def run() -> float:
            inputs = on[count["i"] % len(on)]
            harness.zero_grads(model)
            loss = loss_of(model, head if restrict else None, inputs).loss
            loss.backward()
            return float(loss.detach())

        return run

    # each round: both sides on the same batch (alternating which goes first), the next
    # round on the next batch
    sides = {"all": side(False), "supervised": side(True)}
    times: dict[str, list[float]] = {"all": [], "supervised": []}
    values: dict[str, float] = {}
    for round_ in range(1 + a.repeats):
        order = list(sides) if round_ % 2 == 0 else list(reversed(sides))
        for key in order:
            harness.synchronize(a.device)
            start = time.perf_counter()
            values[key] = sides[key]()
            harness.synchronize(a.device)
            if round_ >= 1:
                times[key].append(time.perf_counter() - start)
        harness.cross_entropy_check(values["all"], values["supervised"], name, 1e-4)
        count["i"] += 1
    timing = harness.Timing(times, values)
    used = on[: max(1, min(len(on), a.repeats + 1))]
    positions = sum(int(b["labels"].numel()) for b in used)
    supervised = sum(int((b["labels"][:, 1:] != -100).sum()) for b in used)
    head.remove()
    return {
        "case": name,
        "dtype": a.dtype,
        "vocab": vocab,
        "batch": a.batch,
        "mean_tokens_per_row": round(positions / (len(used) * a.batch), 1),
        "supervised_share": round(supervised / positions, 3),
        "all_s": round(timing.best("all"), 4),
        "supervised_s": round(timing.best("supervised"), 4),
        "ratio": round(timing.ratio("supervised", "all"), 3),
        "losses_agree": True,
        "times_s": timing.times,
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_real_model_arguments(p)
    p.add_argument("--shapes", nargs="+", default=list(CASES), choices=["smollm2", *harness.SHAPES])
    p.add_argument("--dtype", default="float32", choices=list(harness.DTYPES))
    p.add_argument("--batch", type=int, default=8)
    harness.add_common_arguments(p, repeats=5)
    a = p.parse_args()
    require_model(a.model)
    batches = arc_batches(a.model, a.arc_dir, a.batch, a.repeats + 1)
    rows = [measure(name, a, batches) for name in a.shapes]
    harness.print_table(rows, [k for k in rows[0] if k != "times_s"])
    harness.write_result(
        harness.result_path(a.out, "logits_step", a.device, a.shapes[0]),
        "training step: LM head on supervised positions only vs on every position",
        {k: str(v) if isinstance(v, Path) else v for k, v in vars(a).items() if k != "out"},
        rows,
    )


if __name__ == "__main__":
    main()
