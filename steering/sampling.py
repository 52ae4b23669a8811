"""The training order: length-grouped batches (the protocol's group_by_length), seeded per epoch.

HF's LengthGroupedSampler draws its permutation from the global torch RNG when an epoch
starts. A run resumed mid-training restores that RNG to the checkpoint's state first, so its
later epochs see another order than the uninterrupted run. Here epoch e draws from a generator
seeded with ``seed + e``: the order is a function of (seed, epoch, data) alone, and a resumed
run repeats the uninterrupted one exactly. The grouping window is the global batch (per device
x processes x accumulation), so a DDP run sees the same order as one process with the same
effective batch.
"""

from __future__ import annotations

import torch
from transformers.trainer_pt_utils import LengthGroupedSampler, get_length_grouped_indices


class EpochSeededLengthGroupedSampler(LengthGroupedSampler):
    def __init__(self, window: int, lengths: list[int], seed: int) -> None:
        super().__init__(window, lengths=lengths)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:  # called by the Trainer at each epoch
        self.epoch = epoch

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(get_length_grouped_indices(self.lengths, self.batch_size, generator=g))
