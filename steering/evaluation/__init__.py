"""Evaluation by greedy generation: a model on a task's splits, the records in the official
format with both parsers' verdicts, and the inference entry for a saved checkpoint.

- ``generation``: batched greedy decoding (left padding, stop at EOS) with any method active
- ``evaluator``: one model on a task's splits -> records and metrics, written whole
- ``inference``: a checkpoint of any method (or the official code's) on splits of a task
  (``scripts/inference.py``)

May import: ``methods``, ``loading``, ``tasks``, the top-level modules and ``runtime``.
"""
