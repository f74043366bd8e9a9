"""`leep` and `nce`: scores from the source model's own predictions on target inputs.

LEEP (Nguyen et al., 2020): with ``theta(x)`` the source softmax over source classes ``z``, the
empirical joint ``P(y, z) = mean_i theta(x_i)_z [y_i = y]`` gives ``P(y | z)``; the score is the
mean log-likelihood of the true target labels under the "expected empirical predictor"
``sum_z P(y | z) theta(x)_z``.

NCE (Tran et al., 2019): the source classifier's hard labels ``z_i = argmax theta(x_i)``; the
score is minus the empirical conditional entropy ``H(Y | Z)``: zero when the source labels
determine the target labels, lower the more target labels each source label mixes.
"""

from __future__ import annotations

import numpy as np

from tlbench.plugin.estimator import Estimator

TINY = 1e-12


def leep(source_probs: np.ndarray, labels: np.ndarray) -> float:
    """LEEP of source softmax outputs ``source_probs`` (n, S) for target ``labels`` (n,)."""
    theta = np.asarray(source_probs, dtype=np.float64)
    n = len(labels)
    classes = int(labels.max()) + 1
    onehot = np.eye(classes)[labels]                 # (n, C)
    joint = onehot.T @ theta / n                     # P(y, z), (C, S)
    conditional = joint / np.maximum(joint.sum(axis=0, keepdims=True), TINY)  # P(y | z)
    likelihood = np.einsum("ns,ns->n", theta, conditional[labels])  # sum_z P(y_i | z) theta_z(x_i)
    return float(np.mean(np.log(np.maximum(likelihood, TINY))))


def nce(source_labels: np.ndarray, labels: np.ndarray) -> float:
    """Negative conditional entropy ``-H(Y | Z)`` of target ``labels`` given ``source_labels``."""
    n = len(labels)
    total = 0.0
    for z in np.unique(source_labels):
        ys = labels[source_labels == z]
        p_z = len(ys) / n
        p_y_given_z = np.bincount(ys) / len(ys)
        p_y_given_z = p_y_given_z[p_y_given_z > 0]
        total += p_z * float(np.sum(p_y_given_z * np.log(p_y_given_z)))
    return float(total)


class LEEP(Estimator):
    """LEEP (Nguyen et al., 2020): log expected empirical prediction from the source softmax."""

    needs_source_predictions = True

    def score(self, features, labels, source_probs=None):
        return leep(source_probs, labels)


class NCE(Estimator):
    """NCE (Tran et al., 2019): minus the conditional entropy of target labels given source argmax labels."""

    needs_source_predictions = True

    def score(self, features, labels, source_probs=None):
        return nce(np.asarray(source_probs).argmax(axis=1), labels)
