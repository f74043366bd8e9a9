"""`knn`: leave-one-out k-nearest-neighbour accuracy on the features.

Each labeled example is classified by a majority vote of its ``k`` nearest other examples
(cosine distance by default: features L2-normalised, then Euclidean); the score is the fraction
classified correctly. A vote tie goes to the tied class whose member is nearest.
"""

from __future__ import annotations

import numpy as np

from tlbench.plugin.errors import UserError
from tlbench.plugin.estimator import Estimator

METRICS = ("cosine", "euclidean")


def knn_accuracy(features: np.ndarray, labels: np.ndarray, k: int = 5, metric: str = "cosine") -> float:
    """Leave-one-out accuracy of a ``k``-NN vote over ``features`` (n, d)."""
    from sklearn.metrics import pairwise_distances

    f = np.asarray(features, dtype=np.float64)
    if metric == "cosine":
        f = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
    distances = pairwise_distances(f, metric="euclidean")
    np.fill_diagonal(distances, np.inf)  # leave each example out of its own vote
    k = max(1, min(k, len(f) - 1))
    order = np.argsort(distances, axis=1, kind="stable")[:, :k]
    correct = 0
    for i, neighbours in enumerate(order):
        votes = labels[neighbours]
        counts = np.bincount(votes)
        tied = np.flatnonzero(counts == counts.max())
        predicted = next(v for v in votes if v in tied)  # neighbours are nearest first
        correct += int(predicted == labels[i])
    return correct / len(f)


class KNN(Estimator):
    """Leave-one-out k-NN accuracy on the features (a training-free probe)."""

    defaults = {"k": 5, "metric": "cosine"}
    option_ranges = {"k": (1, 10000)}
    option_choices = {"metric": METRICS}

    def __init__(self, **hparams):
        super().__init__(**hparams)
        if self.hparams["metric"] not in METRICS:
            raise UserError(f"knn option metric={self.hparams['metric']!r}; use one of {', '.join(METRICS)}")
        if int(self.hparams["k"]) < 1:
            raise UserError(f"knn option k={self.hparams['k']} must be at least 1")

    def score(self, features, labels, source_probs=None):
        return knn_accuracy(features, labels, int(self.hparams["k"]), self.hparams["metric"])
