"""``python -m steering.lm_eval``: lm-evaluation-harness's own command line, with our model
registered as ``steering`` (lm-eval 0.4.13 loads no plug-ins), so every lm-eval flag works:

    python -m steering.lm_eval --model steering \\
        --model_args checkpoint=DIR[,pretrained=BASE,precision=bf16] \\
        --tasks arc_challenge,hellaswag --batch_size 16 --output_path out/

Expected errors (an unknown task, a checkpoint that is none or names another base model, the
extra not installed, ...) print one line, ``error: ...``, and exit 2; ``--debug`` (ours,
taken out before lm-eval parses the rest) shows the traceback instead.
"""

from __future__ import annotations

import sys

from steering.lm_eval import MissingExtra, require

UNKNOWN_TASK = "Tasks not found"


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    from steering.runtime.cli import EXPECTED

    try:
        return evaluate(args)
    except (MissingExtra, *EXPECTED) as e:
        if debug:
            raise
        message = " ".join(str(e).split())  # one line, whatever lm-eval's message holds
        if message.startswith(UNKNOWN_TASK):
            message += (
                " (lm-eval's tasks: python -m steering.lm_eval ls tasks; tasks from local "
                "files: --include_path DIR)"
            )
        print(f"error: {message}", file=sys.stderr)
        return 2


def evaluate(args: list[str]) -> int:
    """lm-eval's command line on ``args`` with ``steering`` registered; for ``--model
    steering`` the checkpoint and base model are checked before lm-eval indexes its tasks."""
    require()
    from lm_eval._cli import HarnessCLI
    from lm_eval.utils import setup_logging

    import steering.lm_eval.bridge  # noqa: F401  (registers the model "steering")
    from steering.lm_eval.checkpoints import base_of

    setup_logging()
    held = sys.argv
    sys.argv = ["lm-eval", *args]  # lm-eval parses sys.argv (and inserts `run` when absent)
    try:
        harness = HarnessCLI()
        parsed = harness.parse_args()
        if getattr(parsed, "model", None) == "steering":
            given = parsed.model_args or {}
            base_of(given.get("checkpoint"), given.get("pretrained"))
        harness.execute(parsed)
    finally:
        sys.argv = held
    return 0


if __name__ == "__main__":
    sys.exit(main())
