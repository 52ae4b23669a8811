"""The tokens a training epoch feeds, for the plan: real tokens when batches are packed, the
padding too when they are not (numpy only, no torch).

A padded batch of b rows with lengths n_1 .. n_b feeds b x max_i n_i tokens, a packed one
sum_i n_i (``steering/training/packing.py``). Per row of an epoch, in expectation,

    real = E[min(n, L)]                       (L: the task's max length; truncation)
    fed  = E[b x max_{i in batch} min(n_i, L)] / b

where the batches follow the run's order: the official random order (rows drawn without
regard to length), or length-grouped windows (HF's ``get_length_grouped_indices``: windows of
the global batch, sorted by length within megabatches of up to 50 windows). Neither has a
closed form worth trusting for a skewed length distribution, so both are simulated: row
lengths drawn from the task's measured length profile (``Task.length_quantiles`` at
``LENGTH_PROBS``, linear between the quantiles), as many as the task's training rows, in
repeated epochs up to ``DRAWS`` rows, with a fixed seed so a plan never changes between calls.
On the real ARC rows the simulated padded/real ratio at 8 rows a batch is 1.491, where the rows
themselves give 1.482 (``tests/test_real_model.py`` checks every layout within 2 %).

Which layout a job gets follows the training code: packed by default (in either order),
padded when the variant sets ``packing: false`` or when packing is refused for its method or
architecture (``packing.refusal``), then in length-grouped batches if it sets
``length_grouping: true``. A task without a profile (no public rows measured) is counted at
its ``mean_tokens`` with no padding.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from steering.tasks.base import LENGTH_PROBS

PACKED, PADDED, GROUPED = "packed", "padded", "length-grouped"
DRAWS = 65_536  # rows simulated per estimate (whole epochs of the task's rows)
MEGABATCH = 50  # windows per sorted megabatch (HF's get_length_grouped_indices)


def layout(settings: dict, refusal: str | None) -> str:
    """A training job's batch layout from its run settings and the packing refusal (if any):
    packed batches feed their real tokens whatever the order."""
    if settings.get("packing", True) and refusal is None:
        return PACKED
    return GROUPED if settings.get("length_grouping") else PADDED


def tokens_per_row(task, max_length: int, batch_layout: str, bs: int, window: int):
    """(real, fed): the mean tokens per training row of ``task`` truncated at ``max_length``,
    and those a batch of ``bs`` rows in ``batch_layout`` feeds per row (``window``: the rows
    that length grouping sorts together, the global batch)."""
    if not task.length_quantiles:
        mean = float(min(task.mean_tokens, max_length))
        return mean, mean
    rows = task.public_rows.get("train", 0) or DRAWS
    return _simulate(tuple(task.length_quantiles), max_length, batch_layout, bs, window, rows)


@lru_cache(maxsize=1024)
def _simulate(quantiles, max_length, batch_layout, bs, window, rows, seed=0):
    rng = np.random.default_rng(seed)
    real = fed = 0.0
    epochs = max(1, DRAWS // rows)
    for _ in range(epochs):
        u = rng.random(rows)
        n = np.minimum(np.rint(np.interp(u, LENGTH_PROBS, quantiles)), max_length)  # (rows,)
        real += n.sum()
        if batch_layout == PACKED:
            fed += n.sum()
            continue
        if batch_layout == GROUPED:
            n = _grouped(n, window)
        whole = len(n) // bs * bs
        batches = n[:whole].reshape(-1, bs)  # (batches, bs); the last, partial batch apart
        fed += bs * batches.max(axis=1).sum() + len(n[whole:]) * n[whole:].max(initial=0)
    return real / (rows * epochs), fed / (rows * epochs)


def _grouped(n: np.ndarray, window: int) -> np.ndarray:
    """The rows in length-grouped order: sorted longest first within each megabatch."""
    mega = max(1, min(len(n) // (window * 4), MEGABATCH)) * window
    return np.concatenate([np.sort(n[i : i + mega])[::-1] for i in range(0, len(n), mega)])
