"""Benchmark: a last-token training step (forward + backward) by the packed exact path, by the
naive loop (one pass per supervised position, as the official code trains), and an all-token
step, at several sequence lengths; the packed and naive losses are checked to agree.

    python benchmarks/last_token_step.py [--lengths 64 128 256 --batch 4 --hidden-size 64]

Writes benchmarks/results/last_token_step.json. Targets: packed >= 30x faster than naive at
S = 256, and at most 3x an all-token step.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from steering import SteeredModel, SteeringConfig  # noqa: E402
from steering.last_token import positions  # noqa: E402
from steering.provenance import environment  # noqa: E402
from steering.tiny import tiny_model  # noqa: E402


def naive_step(model, ids, mask, labels):
    """One pass per supervised position t, steering only t; loss = mean over positions."""
    pos = positions(mask)
    total, count = 0.0, int((labels[:, 1:] != -100).sum())
    for t in range(ids.shape[1] - 1):
        target = labels[:, t + 1]
        if (target == -100).all():
            continue
        with model.steering_from(t):
            logits = model.base_model(
                input_ids=ids[:, : t + 1],
                attention_mask=mask[:, : t + 1],
                position_ids=pos[:, : t + 1],
            ).logits[:, t]
        loss = F.cross_entropy(logits, target, ignore_index=-100, reduction="sum") / count
        loss.backward()
        total += float(loss.detach())
    return total


def packed_step(model, ids, mask, labels):
    loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    loss.backward()
    return float(loss.detach())


def timed(fn, *args):
    start = time.perf_counter()
    value = fn(*args)
    return time.perf_counter() - start, value


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--lengths", type=int, nargs="+", default=[64, 128, 256])
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--hidden-size", type=int, default=64)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "last_token_step.json"))
    a = p.parse_args()
    torch.manual_seed(0)
    base = tiny_model("llama", hidden_size=a.hidden_size, num_layers=a.layers).to(a.device)
    last = SteeredModel(base, SteeringConfig(positions="last"))
    with torch.no_grad():
        for prm in last.adapters.parameters():
            prm.normal_(0, 0.05)
    rows = []
    for s in a.lengths:
        ids = torch.randint(3, 500, (a.batch, s), device=a.device)
        mask = torch.ones_like(ids)
        labels = ids.clone()
        labels[:, : s // 4] = -100  # a prompt
        best = {"packed": float("inf"), "naive": float("inf"), "all_token": float("inf")}
        losses = {}
        for _ in range(a.repeats):
            for name in best:
                last.zero_grad(set_to_none=True)
                if name == "all_token":
                    last.steering_config = SteeringConfig(positions="all")
                    t, v = timed(packed_step, last, ids, mask, labels)
                    last.steering_config = SteeringConfig(positions="last")
                else:
                    t, v = timed(
                        packed_step if name == "packed" else naive_step, last, ids, mask, labels
                    )
                if a.device == "cuda":
                    torch.cuda.synchronize()
                best[name] = min(best[name], t)
                losses[name] = v
        assert abs(losses["packed"] - losses["naive"]) < 1e-4, losses
        rows.append(
            {
                "seq_len": s,
                "packed_s": round(best["packed"], 4),
                "naive_s": round(best["naive"], 4),
                "all_token_s": round(best["all_token"], 4),
                "speedup_vs_naive": round(best["naive"] / best["packed"], 1),
                "cost_vs_all_token": round(best["packed"] / best["all_token"], 2),
                "losses_agree": True,
            }
        )
    result = {
        "question": "last-token training step: packed vs naive per-position loop vs all-token",
        "command": " ".join(["python", *sys.argv]),
        "setting": {k: v for k, v in vars(a).items() if k != "out"},
        "rows": rows,
        **environment(),
    }
    print(
        f"{'S':>5}{'packed s':>10}{'naive s':>10}{'all-token s':>13}{'vs naive':>10}{'vs all':>8}"
    )
    for r in rows:
        print(
            f"{r['seq_len']:>5}{r['packed_s']:>10}{r['naive_s']:>10}{r['all_token_s']:>13}"
            f"{r['speedup_vs_naive']:>9}x{r['cost_vs_all_token']:>7}x"
        )
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
