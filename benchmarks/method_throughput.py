"""Benchmark: training and evaluation throughput of each method on the real model.

    python benchmarks/method_throughput.py --arc-dir data/ARC_Challenge [--model DIR
        --methods steering lora full --batch 8 --eval-rows 16 --repeats 3]

The real SmolLM2-135M-Instruct (``--model``, default .cache/models/smollm2-135m) on real
ARC-Challenge rows, for post-block steering (r=8 SiLU), LoRA r=8 and full fine-tuning, each
built by its method of the registry (``steering.methods``) from a fresh load of the base:

- training: one optimizer step (forward, backward with the LM head on the supervised
  positions as training runs it, AdamW step) on a batch of ``--batch`` training rows in the
  official order, padded to the batch's longest row. Reported per second: the rows' real
  tokens (``train_tokens_per_s``) and the tokens fed, padding included.
- evaluation: greedy generation of ``--eval-rows`` test prompts at once (batched as
  evaluation batches them, ARC's 100 new tokens at most), after a step of training so that
  steering's adapters are not a no-op. Reported: prompt tokens and generated tokens per second
  (``eval_new_tokens_per_s`` counts the tokens generated until each row ends, so it depends on
  how long each method's answers are), and the comparable cost: the decoding steps the batch
  ran (its longest row, end token included) and ``eval_batch_tokens_per_s``, rows x steps per
  second, the tokens the model computed, finished rows included.

The methods alternate within each round (drift on a busy machine hits all of them); each
figure is the best round. Writes benchmarks/results/method_throughput_<cpu|gpu>_smollm2.json.
"""

import argparse
import time
from pathlib import Path

import harness
import torch
from logits_step import add_real_model_arguments, arc_batches, require_model

from steering.training.logits import SupervisedHead, loss_of

METHODS = ("steering", "lora", "full")


def build(method: str, a):
    from steering.loading.loader import load_base_model
    from steering.methods import get_method

    base = load_base_model(str(a.model), a.dtype, a.device)
    return get_method(method).build(base, {"rank": 8}).train()


def arc_max_new_tokens() -> int:
    from steering.tasks import get_task

    return get_task("ARC_Challenge").max_new_tokens


def eval_prompts(a) -> tuple[list[list[int]], object]:
    from steering.data import encode_prompt
    from steering.loading.loader import load_tokenizer
    from steering.tasks import get_task

    task = get_task("ARC_Challenge")
    tokenizer = load_tokenizer(str(a.model))
    rows = list(task.load(data_dir=str(a.arc_dir))["test"])[: a.eval_rows]
    return [encode_prompt(tokenizer, task.prompt(r)) for r in rows], tokenizer


class Side:
    """One method's model, optimizer and timings."""

    def __init__(self, method: str, a, batches: list[dict]):
        self.method, self.a, self.batches = method, a, batches
        self.model = build(method, a)
        self.head = SupervisedHead(self.model)
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.trainable = sum(p.numel() for p in trainable)
        self.optimizer = torch.optim.AdamW(trainable, lr=1e-4)
        self.train_s: list[float] = []
        self.eval_s: list[float] = []
        self.new_tokens = 0
        self.steps = 0

    def train_step(self, k: int) -> None:
        inputs = {key: v.to(self.a.device) for key, v in self.batches[k].items()}
        harness.synchronize(self.a.device)
        start = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        loss_of(self.model, self.head, inputs).loss.backward()
        self.optimizer.step()
        harness.synchronize(self.a.device)
        self.train_s.append(time.perf_counter() - start)

    def evaluate(self, prompts: list[list[int]], tokenizer) -> None:
        from steering.evaluation.generation import greedy_generate

        self.model.eval()
        limit = arc_max_new_tokens()
        harness.synchronize(self.a.device)
        start = time.perf_counter()
        with torch.no_grad():
            gen = greedy_generate(
                self.model,
                prompts,
                limit,
                pad_token_id=tokenizer.pad_token_id,
                batch_size=len(prompts),
                progress=False,
            )
        harness.synchronize(self.a.device)
        self.eval_s.append(time.perf_counter() - start)
        self.new_tokens = sum(len(t) for t in gen.tokens)
        # a row that ended also generated its end token, which gen.tokens leaves out
        self.steps = max(min(len(t) + 1, limit) for t in gen.tokens)
        self.model.train()


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_real_model_arguments(p)
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--dtype", default="float32", choices=list(harness.DTYPES))
    p.add_argument("--batch", type=int, default=8, help="training rows a step")
    p.add_argument("--eval-rows", type=int, default=16, help="test prompts decoded at once")
    harness.add_common_arguments(p, repeats=3)
    a = p.parse_args()
    require_model(a.model)
    batches = arc_batches(a.model, a.arc_dir, a.batch, a.repeats + 1)
    prompts, tokenizer = eval_prompts(a)
    sides = [Side(m, a, batches) for m in a.methods]
    for round_ in range(1 + a.repeats):  # round 0 warms up (and trains the adapters a step)
        order = sides if round_ % 2 == 0 else list(reversed(sides))
        for side in order:
            side.train_step(round_)
        for side in order:
            side.evaluate(prompts, tokenizer)
        if round_ == 0:
            for side in sides:
                side.train_s.clear()
                side.eval_s.clear()
    timed = batches[1 : a.repeats + 1]
    real = sum(int(b["attention_mask"].sum()) for b in timed) / len(timed)
    fed = sum(int(b["attention_mask"].numel()) for b in timed) / len(timed)
    prompt_tokens = sum(len(x) for x in prompts)
    rows = []
    for side in sides:
        step, gen = min(side.train_s), min(side.eval_s)
        rows.append(
            {
                "method": side.method,
                "trainable": side.trainable,
                "train_step_s": round(step, 3),
                "train_tokens_per_s": round(real / step, 1),
                "train_fed_tokens_per_s": round(fed / step, 1),
                "eval_s": round(gen, 3),
                "eval_prompt_tokens_per_s": round(prompt_tokens / gen, 1),
                "eval_new_tokens": side.new_tokens,
                "eval_new_tokens_per_s": round(side.new_tokens / gen, 1),
                "eval_steps": side.steps,
                "eval_batch_tokens_per_s": round(len(prompts) * side.steps / gen, 1),
                "train_times_s": [round(t, 3) for t in side.train_s],
                "eval_times_s": [round(t, 3) for t in side.eval_s],
            }
        )
        side.head.remove()
    harness.print_table(rows, [k for k in rows[0] if not k.endswith("times_s")])
    harness.write_result(
        harness.result_path(a.out, "method_throughput", a.device, "smollm2"),
        "training and evaluation throughput of steering, LoRA and full fine-tuning, real model",
        {k: str(v) if isinstance(v, Path) else v for k, v in vars(a).items() if k != "out"},
        rows,
    )


if __name__ == "__main__":
    main()
