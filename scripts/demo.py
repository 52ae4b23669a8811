"""Run the tiny end-to-end steering demo: train, evaluate, save, reload; print a summary."""

import argparse

from steering.demo import run_demo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--out-dir", default="results/demo", help="where summary.json and checkpoint/ go"
    )
    parser.add_argument("--steps", type=int, default=150, help="optimizer steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=1e-2, help="learning rate")
    args = parser.parse_args()
    if args.steps < 1 or args.lr <= 0:
        parser.error("--steps must be >= 1 and --lr > 0")
    s = run_demo(args.out_dir, steps=args.steps, seed=args.seed, lr=args.lr)
    print(
        f"loss {s['train_loss_first']:.3f} -> {s['train_loss_last']:.3f}; accuracy base "
        f"{s['accuracy_base']:.1%} -> steered {s['accuracy_steered']:.1%}; reload reproduces "
        f"outputs: {s['reload_reproduces_outputs']}; wrote {args.out_dir}/summary.json"
    )


if __name__ == "__main__":
    main()
