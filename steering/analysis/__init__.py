"""The paper's oracle-shift analysis (docs/analysis.md): which activation shift after each
block reproduces full fine-tuning, how low-rank it is, and how close each kind of steering
gets.

- ``oracle``: the oracle shifts of a (base, fine-tuned) pair and their statistics
- ``approximations``: low-rank and steering approximations of the oracle shift
- ``run``: one analysis run (``scripts/analyze.py``): two passes, a summary written whole
- ``plots``: its figures

May import: ``pipeline`` (its plot helpers), ``training``, ``evaluation``, ``methods``,
``loading``, ``tasks``, the top-level modules and ``runtime``.
"""
