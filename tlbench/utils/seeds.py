"""Every random stream of a cell, derived from the cell's seed in one place.

A cell draws from several independent ``torch.Generator`` streams, each seeded with
``seed * SEED_STRIDE + salt``; the salt says which stream it is. The values are part of every
stored result (change one and the figures move), so they are fixed here and nowhere else.
"""

from __future__ import annotations

from enum import IntEnum

import torch

SEED_STRIDE = 1_000_003  # larger than any salt: no two (seed, salt) pairs share a generator seed
TARGET_INIT_OFFSET = 7919  # the target model's initial weights: torch.manual_seed(seed + this)


class Salt(IntEnum):
    """Which stream a generator is; its value is added to ``seed * SEED_STRIDE``."""

    SOURCE_TRAINING = 1  # batches of the source model's training
    TRANSFER = 2  # the cell's labeled target shots, then the transfer's batches (tlbench rank draws the same shots)
    AUGMENT = 3  # the target dataset's augmentation during transfer
    SOURCE_HOLDOUT = 4  # the held-out source validation slice
    VALIDATORS = 5  # the generator each validator is handed
    BATCH_STATS = 6  # the test subset of the batch-statistics diagnostic
    TRAIN_VIEW = 7  # the train.augment preset's random crops, flips and colours (source training and transfer)


def seeded_generator(seed: int, salt: Salt) -> torch.Generator:
    """A CPU generator for the ``salt`` stream of a cell with ``seed``."""
    return torch.Generator().manual_seed(seed * SEED_STRIDE + int(salt))
