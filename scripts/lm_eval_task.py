"""Write lm-eval's arc_challenge task over local ARC rows, for evaluating offline.

    python scripts/lm_eval_task.py --arc-challenge data/ARC_Challenge/test.jsonl --out lm_tasks

then give lm-eval the directory as its include path and the task as arc_challenge_local. The
task YAML (<out>/<name>.yaml) includes the installed lm-eval's own arc_challenge.yaml
(prompt, choices, acc and acc_norm) and reads its test split from the rows file (hub schema,
JSON Lines; absolute path) instead of the hub (steering/lm_eval/tasks.py).
"""

import argparse
import sys

from steering.runtime.cli import run


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--arc-challenge", required=True, help="ARC rows in the hub schema (JSON Lines)")
    p.add_argument("--out", required=True, help="the task directory (lm-eval's include path)")
    p.add_argument("--name", default="arc_challenge_local", help="the task's name")
    p.add_argument("--debug", action="store_true")
    a = p.parse_args()
    from steering.lm_eval import tasks

    print(f"wrote {tasks.arc_challenge(a.out, a.arc_challenge, a.name)}")


if __name__ == "__main__":
    sys.exit(run(main, output_flag="--out"))
