"""`hscore`: H-score (Bao et al., 2019), ``tr(cov(f)^-1 cov(E[f | y]))``.

How much of the features' variance the class means carry, measured in the features' own
metric. With fewer examples than feature dimensions ``cov(f)`` is singular: the plain score uses
its pseudo-inverse (as published implementations do) and the value is exactly ``classes - 1``
for every model, so the plain score refuses that case (the estimator records an error, no score).
``shrinkage = "ledoit-wolf"`` is the regularised H-score of Ibrahim et al. (2022),
``tr(Sigma_a^-1 (1 - a) cov(E[f | y]))``: ``Sigma_a = (1 - a) cov(f) + a (tr cov(f) / d) I`` is
the Ledoit-Wolf (2004) shrunk covariance and ``a`` in [0, 1] its estimated shrinkage intensity
(scikit-learn's ``ledoit_wolf``). The ``(1 - a)`` factor shrinks the between-class covariance
like the within-feature one, so heavy shrinkage (few examples, many dimensions) cannot inflate
the score.

Conventions: features are centred with their sample mean; both covariances divide by ``n``
(biased, as ``ledoit_wolf`` does). The plain score is unchanged by that choice (a ratio); the
regularised one is ``(n - 1) / n`` times Transfer-Learning-Library's
``regularized_h_score``, whose ``cov(E[f | y])`` divides by ``n - 1`` (its shrunk one by ``n``).
"""

from __future__ import annotations

import numpy as np

from tlbench.plugin.errors import UserError
from tlbench.plugin.estimator import Estimator

SHRINKAGE = ("none", "ledoit-wolf")


def hscore(features: np.ndarray, labels: np.ndarray, shrinkage: str = "none") -> float:
    """H-score of ``features`` (n, d) for integer ``labels`` (n,)."""
    f = np.asarray(features, dtype=np.float64)
    f = f - f.mean(axis=0, keepdims=True)
    between_scale = 1.0
    if shrinkage == "ledoit-wolf":
        from sklearn.covariance import ledoit_wolf

        cov_f, intensity = ledoit_wolf(f, assume_centered=True)
        between_scale = 1.0 - float(intensity)  # the (1 - a) of the regularised H-score
    else:
        if len(f) <= f.shape[1] + 1:
            # n centred rows span at most n - 1 dimensions: with n <= d + 1 they span the whole space
            # orthogonal to the ones vector, so tr(pinv(cov f) cov g) is exactly classes - 1 for any features
            raise ValueError(f"H-score is degenerate with {len(f)} examples for {f.shape[1]} feature dimensions "
                             f"(it equals classes - 1 for every model; it needs more than {f.shape[1] + 1} examples); "
                             "use hscore-lw (Ledoit-Wolf shrinkage)")
        cov_f = f.T @ f / len(f)
    class_means = np.zeros_like(f)
    for k in np.unique(labels):
        class_means[labels == k] = f[labels == k].mean(axis=0)
    cov_g = between_scale * class_means.T @ class_means / len(f)
    return float(np.trace(np.linalg.pinv(cov_f, rcond=1e-15, hermitian=True) @ cov_g))


class HScore(Estimator):
    """H-score (Bao et al., 2019): class-mean covariance in the metric of the feature covariance."""

    defaults = {"shrinkage": "none"}
    option_choices = {"shrinkage": SHRINKAGE}

    def __init__(self, **hparams):
        super().__init__(**hparams)
        if self.hparams["shrinkage"] not in SHRINKAGE:
            raise UserError(f"hscore option shrinkage={self.hparams['shrinkage']!r}; use one of {', '.join(SHRINKAGE)}")

    def score(self, features, labels, source_probs=None):
        return hscore(features, labels, self.hparams["shrinkage"])


class ShrunkHScore(HScore):
    """Regularised H-score (Ibrahim et al., 2022): Ledoit-Wolf covariance and the (1 - a) factor;
    usable with fewer examples than features."""

    defaults = {"shrinkage": "ledoit-wolf"}
