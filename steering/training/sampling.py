"""The training order: the official code's random batches by default, length-grouped batches
on request, both a function of (seed, epoch, data) alone.

The official code pads every training row to the task's max length before the Trainer sees it,
so its ``group_by_length`` runs HF's ``LengthGroupedSampler`` on rows of one length: sorting
keeps the random permutation as it is, and the paper's runs were trained on random batches.
That permutation comes from torch's global CPU generator, which ``Trainer`` seeds with
``set_seed(seed)``; every epoch the ``DataLoader`` first draws its worker base seed (one int64)
from it, then the sampler draws ``randperm(n)``. Nothing else in a training step draws from the
CPU generator (CUDA kernels have their own), so epoch e's order is that of a generator seeded
with ``seed`` after e such (draw, permutation) pairs. ``TrainingOrder`` replays that stream
from a generator of its own: the same rows in the same batches as the official code under the
same seed, while the model sees each batch padded only to its longest row; and an epoch's order
never depends on what ran before it in this process, so a resumed run repeats the uninterrupted
one exactly (HF's own sampler does not: a resumed run restores the RNG of the checkpoint, not
of the epoch's start).

``grouped=True`` (``length_grouping``) is the opt-in speed mode: the same stream feeds HF's
``get_length_grouped_indices`` on the rows' real lengths, over windows of the global batch (per
device x processes x accumulation), so batches hold rows of similar length (little padding)
and a DDP run sees the order of one process with the same effective batch. Those batches are
not the paper's: with the loss averaged over each batch's supervised tokens, rows weigh
differently per step (docs/decisions.md).
"""

from __future__ import annotations

import torch
from torch.utils.data import Sampler
from transformers.trainer_pt_utils import get_length_grouped_indices


def _loader_seed(g: torch.Generator) -> None:
    """The draw a ``DataLoader`` makes for its worker base seed at the start of each epoch."""
    torch.empty((), dtype=torch.int64).random_(generator=g)


def epoch_generator(seed: int, epoch: int, n: int) -> torch.Generator:
    """The global generator's state at the moment HF's sampler draws epoch ``epoch``'s
    permutation of ``n`` rows in a run seeded with ``seed``."""
    g = torch.Generator().manual_seed(seed)
    for _ in range(epoch):
        _loader_seed(g)
        torch.randperm(n, generator=g)  # what every earlier epoch drew (grouped or not)
    _loader_seed(g)
    return g


class TrainingOrder(Sampler[int]):
    """Row indices for one epoch: the official random order, or length-grouped windows."""

    def __init__(self, lengths: list[int], seed: int, window: int, grouped: bool = False) -> None:
        self.lengths = list(lengths)
        self.seed = seed
        self.window = window
        self.grouped = grouped
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.lengths)

    def set_epoch(self, epoch: int) -> None:  # called by the Trainer at each epoch
        self.epoch = epoch

    def indices(self) -> list[int]:
        g = epoch_generator(self.seed, self.epoch, len(self.lengths))
        if self.grouped:
            return list(get_length_grouped_indices(self.lengths, self.window, generator=g))
        # HF's LengthGroupedSampler when every row has one length: the permutation unchanged
        return torch.randperm(len(self.lengths), generator=g).tolist()

    def __iter__(self):
        return iter(self.indices())
