"""Benchmark: a last-token training step (forward + backward) by the packed exact path, by the
naive loop (one pass per supervised position, as the official code trains), and an all-token
step, at several sequence lengths; the packed and naive losses are checked to agree.

    python benchmarks/last_token_step.py [--lengths 64 128 256 --batch 4 --hidden-size 64]

Targets: packed >= 30x faster than naive at S = 256, and at most 3x an all-token step.
Writes benchmarks/results/last_token_step_<cpu|gpu>_tiny.json.
"""

import argparse

import harness
import torch
import torch.nn.functional as F

from steering import SteeredModel, SteeringConfig
from steering.last_token import positions
from steering.loading.tiny import tiny_model


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


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--lengths", type=int, nargs="+", default=[64, 128, 256])
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--hidden-size", type=int, default=64)
    p.add_argument("--layers", type=int, default=4)
    harness.add_common_arguments(p, repeats=5)
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

        def side(step, positions_, batch=(ids, mask, labels)):
            def run():
                last.zero_grad(set_to_none=True)
                last.steering_config = SteeringConfig(positions=positions_)
                try:
                    return step(last, *batch)
                finally:
                    last.steering_config = SteeringConfig(positions="last")

            return run

        timing = harness.interleaved(
            {
                "packed": side(packed_step, "last"),
                "naive": side(naive_step, "last"),
                "all_token": side(packed_step, "all"),
            },
            a.repeats,
            a.device,
        )
        losses, best = timing.values, timing.bests()
        harness.cross_entropy_check(losses["packed"], losses["naive"], "packed vs naive", 1e-4)
        rows.append(
            {
                "seq_len": s,
                "packed_s": round(best["packed"], 6),
                "naive_s": round(best["naive"], 6),
                "all_token_s": round(best["all_token"], 6),
                "speedup_vs_naive": round(timing.ratio("naive", "packed"), 1),
                "cost_vs_all_token": round(timing.ratio("packed", "all_token"), 2),
                "losses_agree": True,
                "times_s": timing.times,
            }
        )
    harness.print_table(rows, [k for k in rows[0] if k != "times_s"])
    harness.write_result(
        harness.result_path(a.out, "last_token_step", a.device, "tiny"),
        "last-token training step: packed vs naive per-position loop vs all-token",
        {k: v for k, v in vars(a).items() if k != "out"},
        rows,
    )


if __name__ == "__main__":
    main()
