"""Benchmark: which task gives GRPO a signal from the untrained model (issue 38, item 6).

    python benchmarks/grpo_start.py --data-root data --listops-dir DIR [--model DIR
        --prompts 16 --generations 8 --max-new-tokens 32]

GRPO learns only from groups whose completions differ in reward: a prompt whose G sampled
completions all score the same has advantage 0 and no gradient. So before a real run, this
samples ``--generations`` completions of ``--prompts`` training prompts per task from the
untrained SmolLM2-135M-Instruct, as a GRPO rollout samples them (temperature 1, no top-k or
top-p cut, the task's prompt tokenized as evaluation tokenizes it, up to the task's new
tokens), and scores them with the task's rewards (``steering.tasks.rewards``). Reported per
task: the mean format, accuracy and strict-accuracy rewards, and the share of prompts whose
group has any spread in the weighted reward (the share that trains). Writes
benchmarks/results/grpo_start_<cpu|gpu>_smollm2.json.
"""

import argparse
import json
import statistics
import time
from pathlib import Path

import harness
import torch
from logits_step import ROOT, require_model

TASKS = ("BoolQ", "Winogrande", "ListOps", "ARC_Challenge", "AQuA", "GSM8K")


def sample_task(name: str, data_dir: Path, a, model, tokenizer, chat: bool) -> dict:
    from steering.data import encode_prompt
    from steering.tasks import get_task
    from steering.tasks.rewards import TASK_REWARDS, default_weights

    task = get_task(name)
    rows = list(task.load(data_dir=str(data_dir))["train"])[: a.prompts]
    new_tokens = min(task.max_new_tokens, a.max_new_tokens)
    weights = default_weights(name)
    scores = {n: [] for n in weights}  # per completion
    spread, tokens = 0, 0
    start = time.perf_counter()
    torch.manual_seed(a.seed)
    for row in rows:
        prompt = task.prompt(row)
        ids = torch.tensor([encode_prompt(tokenizer, prompt, chat)], device=model.device)
        out = model.generate(
            input_ids=ids.expand(a.generations, -1),
            attention_mask=torch.ones_like(ids).expand(a.generations, -1),
            do_sample=True,
            temperature=1.0,
            top_k=0,
            top_p=1.0,
            max_new_tokens=new_tokens,
            pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
        )[:, ids.size(1) :]
        texts = tokenizer.batch_decode(out, skip_special_tokens=True)
        tokens += int((out != (tokenizer.pad_token_id or tokenizer.eos_token_id)).sum())
        label = task.label(row)
        weighted = []
        for text in texts:
            total = 0.0
            for n, w in weights.items():
                r = TASK_REWARDS[n](task, prompt, text, label)
                scores[n].append(r)
                total += w * r
            weighted.append(total)
        spread += len(set(weighted)) > 1
    return {
        "task": name,
        "prompts": len(rows),
        "new_tokens": new_tokens,
        **{f"{n}_mean": round(statistics.mean(v), 4) for n, v in scores.items()},
        "groups_with_spread": round(spread / len(rows), 3),
        "seconds": round(time.perf_counter() - start, 1),
        "tokens_per_s": round(tokens / (time.perf_counter() - start), 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=ROOT / ".cache/models/smollm2-135m")
    p.add_argument("--data-root", type=Path, required=True, help="holds one folder per task")
    p.add_argument("--listops-dir", type=Path, help="ListOps rows (prepare_data --synthetic)")
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    p.add_argument("--prompts", type=int, default=16)
    p.add_argument("--generations", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=32, help="cap on the task's own")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=harness.default_device())
    p.add_argument("--out", default=None)
    a = p.parse_args()
    require_model(a.model)
    from steering.architectures import uses_chat_template
    from steering.loading.loader import load_base_model, load_tokenizer

    tokenizer = load_tokenizer(str(a.model))
    model_type = json.loads((a.model / "config.json").read_text())["model_type"]
    chat = uses_chat_template(model_type)
    model = load_base_model(str(a.model), "float32", a.device).eval()
    out = []
    for name in a.tasks:
        data_dir = a.listops_dir if name == "ListOps" else a.data_root / name
        if data_dir is None:
            continue
        with torch.no_grad():
            out.append(sample_task(name, data_dir, a, model, tokenizer, chat))
        print(json.dumps(out[-1]), flush=True)
    harness.print_table(
        out,
        ["task", "format_mean", "accuracy_mean", "accuracy_strict_mean", "groups_with_spread"],
    )
    setting = {k: getattr(a, k) for k in ("prompts", "generations", "max_new_tokens", "seed")}
    setting |= {"model": str(a.model), "data_root": str(a.data_root), "chat_template": chat}
    setting |= {"device": a.device}
    harness.write_result(
        harness.result_path(a.out, "grpo_start", a.device, "smollm2"),
        "Which task gives GRPO a signal from the untrained model: the mean rewards of sampled "
        "completions and the share of prompts whose group differs in reward?",
        setting,
        out,
    )


if __name__ == "__main__":
    main()
