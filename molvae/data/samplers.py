"""Length-bucketed batches: molecules of similar length share a batch (less padding)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np


logger = logging.getLogger(__name__)

__all__ = ["BucketBatchSampler"]

class BucketBatchSampler:
    """Batches of indices whose molecules have similar lengths, in a seeded random order.

    Sorting inside shuffled windows of ``bucket_factor * batch_size`` keeps padding low
    while every epoch still sees a fresh mix.  With ``world_size > 1`` every global batch is
    split between the ranks (rank r takes rows r, r + world_size, ...), so N processes see
    the same global batches as one process would.
    """

    def __init__(
        self,
        lengths: np.ndarray,
        batch_size: int,
        seed: int = 0,
        bucket_factor: int = 50,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ):
        self.lengths = np.asarray(lengths)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.bucket_factor = int(bucket_factor)
        self.drop_last = drop_last
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def batches(self) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.lengths))
        window = self.batch_size * self.bucket_factor
        out: list[np.ndarray] = []
        for start in range(0, len(order), window):
            chunk = order[start : start + window]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            for b in range(0, len(chunk), self.batch_size):
                batch = chunk[b : b + self.batch_size]
                if self.drop_last and len(batch) < self.batch_size:
                    continue
                out.append(batch)
        perm = rng.permutation(len(out))
        out = [out[i] for i in perm]
        if self.world_size > 1:
            out = [b[self.rank :: self.world_size] for b in out if len(b) >= self.world_size]
        return out

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter(self.batches())

    def __len__(self) -> int:
        return len(self.batches())

