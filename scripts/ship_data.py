"""Rebuild the shipped real data (``data/``) from the public files, or check it.

    python scripts/ship_data.py --source /path/to/real-full --out data   # rebuild
    python scripts/ship_data.py --check                                  # verify data/

The source holds one folder per task with the public source splits as JSON lines in the hub
schema (``<task>/<split>.jsonl``). Missing splits are carved deterministically
(``steering/tasks/shipped.py`` says how); ``data/manifest.json`` records every file's sha256,
rows, origin and recipe. ``--check`` verifies files against the manifest and that no row is in
two splits; it exits 1 listing the problems.
"""

import argparse
import sys

from steering.runtime.cli import run
from steering.tasks.shipped import SHIPPED_TASKS, build, check, repo_root


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--source", help="folder with <task>/<split>.jsonl public files")
    parser.add_argument("--out", default=str(repo_root() / "data"), help="default: data/")
    parser.add_argument("--tasks", nargs="+", default=list(SHIPPED_TASKS), choices=SHIPPED_TASKS)
    parser.add_argument("--check", action="store_true", help="verify --out, build nothing")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    args = parser.parse_args()
    if not args.check:
        if not args.source:
            parser.error("--source is required to build (or pass --check)")
        manifest = build(args.source, args.out, args.tasks)
        for task, info in manifest["tasks"].items():
            rows = ", ".join(f"{n} {e['rows']}" for n, e in info["files"].items())
            print(f"{task}: {rows}")
    problems = check(args.out)
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    print(f"{args.out}: {'OK' if not problems else f'{len(problems)} problem(s)'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(run(main, output_flag="--out"))
