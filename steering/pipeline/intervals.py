"""Bootstrap intervals and paired tests over evaluated items (numpy only, no torch).

Every evaluated item gets a score per run: 1 if the parser marks the output right, else 0.
A cell (model, dataset, split, variant) is the matrix X (k seeds, n items).

- **Cell interval** (the summaries): a two-level bootstrap, seeds and items both resampled
  with replacement (k of k, n of n), the statistic the mean accuracy; the 95 % interval is
  the 2.5 and 97.5 percentiles of the R resampled means (percentile method).
- **Paired difference** (comparisons.csv): item scores a_i, b_i (each the mean correctness
  over the seeds, ``comparisons.py`` says which), d_i = a_i - b_i, diff = mean(d). Interval:
  the paired bootstrap over items (the same resampled items for both, i.e. d resampled).
  p-value: the paired permutation test, each d_i's sign flipped at random (the two
  variants' labels swapped item by item), two-sided, p = (1 + #{|T*| >= |T|}) / (R + 1), as
  ``scipy.stats.permutation_test`` computes it.
- **Selection stability** (selection.csv): validation items resampled; the share of
  resamples where the point with the best mean still is the selected one.

The resampler: ``numpy.random.Generator`` (PCG64) seeded from (``seed``, the key), so every
figure is reproducible whatever order the keys come in. A bootstrap resample is drawn as item
counts (how often each of the n items was drawn), which makes every resampled mean one matrix
product, and the same draws serve every variant of one (model, dataset, split): the
comparisons are paired by construction. Checked against ``scipy.stats.bootstrap``
and ``scipy.stats.permutation_test`` in tests/test_intervals.py.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

RESAMPLES = 10_000
SEED = 0
LEVEL = 0.95


def _rng(seed: int, key: tuple, salt: str) -> np.random.Generator:
    words = [seed, zlib.crc32(repr((salt, *key)).encode())]
    return np.random.default_rng(words)


CHUNK = 1000  # resamples drawn at a time: arrays of ~10 MB, which the allocator reuses


@dataclass(frozen=True)
class Resampler:
    """R bootstrap resamples (and R sign flips) of a key's items, drawn from a generator seeded
    with (``seed``, the key), in chunks of ``CHUNK``: the same key always gets the same draws.
    Drawn in chunks because arrays of R x n (100 MB at n = 1,300) cost more in fresh memory
    pages than in arithmetic on the machines measured (benchmarks/aggregate_time.py)."""

    resamples: int = RESAMPLES
    seed: int = SEED

    def _stream(self, key: tuple, salt: str, n: int, draw):
        rng = _rng(self.seed, key, salt)
        for start in range(0, self.resamples, CHUNK):
            yield start, draw(rng, min(CHUNK, self.resamples - start), n)

    def seed_draws(self, key: tuple, k: int) -> np.ndarray:
        """(R, k) indices: the seeds drawn with replacement in each resample."""
        return _rng(self.seed, key, f"seeds{k}").integers(0, k, size=(self.resamples, k))

    def means(self, key: tuple, columns: np.ndarray) -> np.ndarray:
        """(R, m): the mean of each column of ``columns`` (n items, m) in every bootstrap
        resample of ``key``'s items (each a draw of n items with replacement, as item
        counts: one matrix product for every column)."""
        return self._products(key, "items", _item_counts, columns)

    def flipped(self, key: tuple, columns: np.ndarray) -> np.ndarray:
        """(R, m): each column's mean under every sign flip of the permutation test."""
        return self._products(key, "signs", _signs, columns)

    def _products(self, key: tuple, salt: str, draw, columns: np.ndarray) -> np.ndarray:
        """(R, m): ``draw``'s weights (r, n per chunk) times ``columns``, over n."""
        columns = np.asarray(columns, dtype=np.float32)
        n = columns.shape[0]
        out = np.empty((self.resamples, columns.shape[1]), dtype=np.float32)
        for start, weights in self._stream(key, salt, n, draw):
            out[start : start + len(weights)] = weights @ columns
        return out / n


def _item_counts(rng: np.random.Generator, r: int, n: int) -> np.ndarray:
    """(r, n) float32: how often each of n items is drawn in each of r resamples."""
    drawn = rng.integers(0, n, size=(r, n)) + (np.arange(r) * n)[:, None]
    return np.bincount(drawn.ravel(), minlength=r * n).reshape(r, n).astype(np.float32)


def _signs(rng: np.random.Generator, r: int, n: int) -> np.ndarray:
    """(r, n) float32 of +-1."""
    return (2 * rng.integers(0, 2, size=(r, n)) - 1).astype(np.float32)


def percentiles(values: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The percentile interval of resampled statistics."""
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def over_seeds(per_seed: np.ndarray, draws: np.ndarray, level: float = LEVEL):
    """The interval of a mean over seeds from each seed's resampled means ``per_seed`` (R, k)
    and the seeds drawn in each resample ``draws`` (R, k): the second level of the
    bootstrap."""
    return percentiles(np.take_along_axis(per_seed, draws, axis=1).mean(axis=1), level)


def cell_interval(
    cells: list[tuple[np.ndarray, tuple]],
    resampler: Resampler,
    seed_key: tuple,
    level: float = LEVEL,
) -> tuple[float, float]:
    """The interval of a mean accuracy over seeds: ``cells`` holds one (scores, items key) per
    dataset averaged, scores (k seeds, n items) of 0/1 with the seeds in the same order in
    every cell (one cell: a summary cell; several: its ``Average``). Items are resampled per
    dataset, the seeds jointly (module docstring); in the scores' units."""
    per_seed = sum(resampler.means(key, np.asarray(x).T) for x, key in cells) / len(cells)
    return over_seeds(per_seed, resampler.seed_draws(seed_key, per_seed.shape[1]), level)


@dataclass(frozen=True)
class Paired:
    """A paired comparison: the mean difference, its interval and the two-sided p-value."""

    diff: float
    low: float
    high: float
    p_value: float
    n_items: int


def paired(d: np.ndarray, boot: np.ndarray, flipped: np.ndarray, level: float = LEVEL) -> Paired:
    """The comparison of per-item differences ``d`` (n,) from their bootstrap means ``boot``
    (R,) and their means under the permutation test's sign flips ``flipped`` (R,)."""
    observed = float(np.mean(d))
    # a tolerance, as scipy's: float32 sums of the same values differ in the last bits
    extreme = np.abs(flipped) >= abs(observed) * (1 - 1e-6) - 1e-9
    p = (1 + int(extreme.sum())) / (len(flipped) + 1)
    low, high = percentiles(boot, level)
    return Paired(observed, low, high, min(p, 1.0), len(d))


def paired_difference(
    a: np.ndarray, b: np.ndarray, resampler: Resampler, key: tuple, level: float = LEVEL
) -> Paired:
    """``a`` minus ``b``, per-item scores (n,) of the same items in the same order."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or not len(a):
        raise ValueError(f"paired scores must be equal non-empty vectors: {a.shape}, {b.shape}")
    d = (a - b)[:, None]
    return paired(d[:, 0], resampler.means(key, d)[:, 0], resampler.flipped(key, d)[:, 0], level)


def winners(sums: np.ndarray, ranks: list[int]) -> np.ndarray:
    """(R,) the winning point of each resample from integer-valued ``sums`` (R, P); an exact
    tie goes to the point with the smaller rank (the selection's tie rule)."""
    bonus = (len(ranks) - np.asarray(ranks)) * 0.1  # < 1: decides exact ties only
    return np.argmax(np.round(sums) + bonus, axis=1)


def selection_stability(
    validation: np.ndarray, chosen: int, resampler: Resampler, key: tuple, ranks: list[int]
) -> float:
    """The share of bootstrap resamples of the validation items in which point ``chosen``
    still has the best mean. ``validation`` (P points, n items): each point's number of
    seeds right on each item (integers); ``ranks[p]``: point p's place under the tie rule."""
    validation = np.asarray(validation, dtype=np.float32)
    sums = resampler.means(key, validation.T) * validation.shape[1]  # integers, to float32
    return float((winners(sums, ranks) == chosen).mean())
