"""`logme`: the log marginal evidence of a Bayesian linear model on the features (You et al., 2021).

For each target class ``k`` the one-hot column ``y_k`` is modelled as ``y_k = F w + noise`` with
a Gaussian prior ``w ~ N(0, 1/alpha)`` and noise precision ``beta``. The evidence
``p(y_k | F, alpha, beta)`` is maximised over ``alpha`` and ``beta`` by MacKay's fixed point
(``gamma`` = effective number of parameters; ``alpha = gamma / |m|^2``,
``beta = (n - gamma) / |F m - y|^2`` with ``m`` the posterior mean), everything in the
eigenbasis of ``F^T F`` from one SVD. LogME is the maximised log evidence divided by ``n``,
averaged over the classes: high when a linear model on these features explains the labels
without needing large weights.

The fixed point stops when both ``log alpha`` and ``log beta`` move by less than ``tol`` or
after ``max_iter`` updates, and never after more than ``MAX_ITERATIONS`` whatever the options
(a negative ``tol`` or a huge ``max_iter`` cannot make it run forever); the evidence is then
taken at the last iterate. Conventions: ``log`` is natural, the evidence is the full Gaussian
log density (its ``-n/2 log 2 pi`` included) divided by ``n``.
"""

from __future__ import annotations

import numpy as np

from tlbench.plugin.estimator import Estimator


MAX_ITERATIONS = 1000  # hard cap on fixed-point updates per class, whatever max_iter and tol say


def fixed_point(singular: np.ndarray, projected: np.ndarray, residual: float, n: int,
                max_iter: int = 100, tol: float = 1e-6) -> tuple[float, float, int]:
    """MacKay's updates of ``(alpha, beta)`` from ``(1, 1)``; returns them and the number of
    updates made (at most ``min(max_iter, MAX_ITERATIONS)``, at least 1)."""
    s2 = singular**2
    alpha, beta = 1.0, 1.0
    limit = min(max(int(max_iter), 1), MAX_ITERATIONS)
    iterations = 0
    while iterations < limit:
        iterations += 1
        denom = alpha + beta * s2
        gamma = float(np.sum(beta * s2 / denom))
        m2 = float(np.sum((beta * singular * projected / denom) ** 2))
        err = float(np.sum((alpha * projected / denom) ** 2)) + residual
        new_alpha = gamma / max(m2, 1e-12)
        new_beta = max(n - gamma, 1e-12) / max(err, 1e-12)
        converged = abs(np.log(new_alpha / alpha)) < tol and abs(np.log(new_beta / beta)) < tol
        alpha, beta = new_alpha, new_beta
        if converged:
            break
    return alpha, beta, iterations


def class_evidence(singular: np.ndarray, projected: np.ndarray, residual: float, n: int, dim: int,
                   max_iter: int = 100, tol: float = 1e-6) -> float:
    """Maximised log evidence / n of one target column.

    ``singular``: the ``r`` non-zero singular values of F; ``projected``: ``U^T y`` (length r);
    ``residual``: ``|y|^2 - |U^T y|^2`` (the part of y outside F's column space)."""
    s2 = singular**2
    alpha, beta, _ = fixed_point(singular, projected, residual, n, max_iter, tol)
    denom = alpha + beta * s2
    m2 = float(np.sum((beta * singular * projected / denom) ** 2))
    err = float(np.sum((alpha * projected / denom) ** 2)) + residual
    log_det = float(np.sum(np.log(denom))) + (dim - len(singular)) * np.log(alpha)
    evidence = (n * np.log(beta) + dim * np.log(alpha) - n * np.log(2 * np.pi)
                - beta * err - alpha * m2 - log_det) / 2
    return float(evidence / n)


def logme(features: np.ndarray, labels: np.ndarray, max_iter: int = 100, tol: float = 1e-6) -> float:
    """LogME of ``features`` (n, d) for integer ``labels`` (n,): mean over classes of the
    maximised log evidence per example."""
    f = np.asarray(features, dtype=np.float64)
    n, dim = f.shape
    u, singular, _ = np.linalg.svd(f, full_matrices=False)
    keep = singular > singular.max(initial=0.0) * max(n, dim) * np.finfo(np.float64).eps
    u, singular = u[:, keep], singular[keep]
    scores = []
    for k in np.unique(labels):
        y = (labels == k).astype(np.float64)
        projected = u.T @ y
        residual = max(float(y @ y - projected @ projected), 0.0)
        scores.append(class_evidence(singular, projected, residual, n, dim, max_iter, tol))
    return float(np.mean(scores))


class LogME(Estimator):
    """LogME (You et al., 2021): log marginal evidence of a linear model on the features, per example."""

    defaults = {"max_iter": 100, "tol": 1e-6}
    option_ranges = {"max_iter": (1, MAX_ITERATIONS), "tol": (0.0, None)}

    def score(self, features, labels, source_probs=None):
        return logme(features, labels, int(self.hparams["max_iter"]), float(self.hparams["tol"]))
