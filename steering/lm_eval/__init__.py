"""Evaluation of any checkpoint with EleutherAI's lm-evaluation-harness (the optional extra
``lm_eval``): capability retention beside the task a method was trained on.

    from steering.lm_eval import SteeringLM
    lm = SteeringLM(checkpoint="results/runs/.../checkpoint", batch_size=16)
    lm_eval.simple_evaluate(model=lm, tasks=["arc_challenge", "hellaswag"])

    python -m steering.lm_eval --model steering --model_args checkpoint=DIR --tasks arc_easy

The parts: ``bridge`` (``SteeringLM``, lm-eval's ``HFLM`` routed through a checkpoint's
method), ``checkpoints`` (a checkpoint of any method loaded for it, with its provenance),
``steered`` (a steering-vector checkpoint exported to lm-eval's ``steered`` format),
``tasks`` (lm-eval task configs over local files), ``tables`` (the pipeline's
``lm_eval.csv`` and retention table; no torch, no lm-eval) and ``__main__`` (lm-eval's own
command line with our model registered). Only ``bridge`` and ``__main__`` import lm-eval;
without the extra they say in one line how to install it (``MissingExtra``). The pipeline
builds the lm-eval jobs (``steering/pipeline/lm_eval_jobs.py``).

May import: ``pipeline`` (selection and results, for the point to evaluate), ``training``,
``evaluation``, ``methods``, ``loading``, the top-level modules and ``runtime``.
"""

from __future__ import annotations

import importlib

from steering.runtime.errors import LM_EVAL_INSTALL as INSTALL
from steering.runtime.errors import MissingExtra


def require() -> None:
    """Import lm-eval, or raise ``MissingExtra`` saying how to install it."""
    try:
        importlib.import_module("lm_eval")
    except ImportError:
        raise MissingExtra(INSTALL) from None


def __getattr__(name: str):
    if name == "SteeringLM":  # lazy: the tables and the export need no lm-eval
        require()
        from steering.lm_eval.bridge import SteeringLM

        return SteeringLM
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["INSTALL", "MissingExtra", "SteeringLM", "require"]
