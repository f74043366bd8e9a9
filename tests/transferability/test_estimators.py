"""The first-party estimators against their definitions, on inputs small enough to check by hand."""

import math

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.stats import multivariate_normal

from tlbench.plugin.errors import UserError
from tlbench.plugin.estimator import Estimator
from tlbench.transferability.scoring import score_all
from tlbench_plugins.estimators.hscore import HScore, hscore
from tlbench_plugins.estimators.knn import knn_accuracy
from tlbench_plugins.estimators.leep import LEEP, NCE, leep, nce
from tlbench_plugins.estimators.logme import logme


def separable(seed: int, n_per_class=10, classes=5, dim=64):
    """(features whose first ``classes`` dimensions encode the label, random features of the same shape, labels)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), n_per_class)
    good = rng.normal(size=(len(labels), dim))
    good[:, :classes] += 3.0 * np.eye(classes)[labels]
    return good, rng.normal(size=good.shape), labels


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_logme_prefers_features_that_separate_the_classes(seed):
    good, random, labels = separable(seed)
    assert logme(good, labels) > logme(random, labels) + 0.05


def test_logme_is_the_maximised_log_evidence_per_example():
    """Brute force: maximise log N(y | 0, F F^T / alpha + I / beta) over alpha, beta per class."""
    rng = np.random.default_rng(3)
    features = rng.normal(size=(12, 4))
    labels = np.array([0, 1, 2] * 4)
    features[:, 0] += labels  # some signal, so the optimum is interior
    n = len(labels)

    def best_evidence(y):
        def negative(log_ab):
            alpha, beta = np.exp(log_ab)
            cov = features @ features.T / alpha + np.eye(n) / beta
            return -multivariate_normal(np.zeros(n), cov).logpdf(y)
        return -minimize(negative, np.zeros(2), method="Nelder-Mead", options={"xatol": 1e-8, "fatol": 1e-10}).fun / n

    expected = np.mean([best_evidence((labels == k).astype(float)) for k in range(3)])
    assert logme(features, labels) == pytest.approx(expected, abs=1e-5)


def test_logme_handles_more_dimensions_than_examples():
    good, random, labels = separable(4, n_per_class=4, classes=5, dim=300)
    assert math.isfinite(logme(good, labels)) and logme(good, labels) > logme(random, labels)


def test_leep_equals_a_hand_computation():
    theta = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.1, 0.9]])  # source softmax, 2 source classes
    labels = np.array([0, 0, 1, 1])
    # joint P(y, z) = sum over examples of theta_z [y_i = y] / 4
    p00, p01 = (0.9 + 0.8) / 4, (0.1 + 0.2) / 4
    p10, p11 = (0.3 + 0.1) / 4, (0.7 + 0.9) / 4
    pz0, pz1 = p00 + p10, p01 + p11
    # P(y | z), then each example's likelihood sum_z P(y_i | z) theta_z(x_i)
    like0 = [p00 / pz0 * t0 + p01 / pz1 * t1 for t0, t1 in theta[:2]]
    like1 = [p10 / pz0 * t0 + p11 / pz1 * t1 for t0, t1 in theta[2:]]
    expected = sum(math.log(v) for v in like0 + like1) / 4
    assert leep(theta, labels) == pytest.approx(expected, rel=1e-12)
    assert LEEP().score(None, labels, theta) == pytest.approx(expected, rel=1e-12)


def test_leep_is_zero_when_the_source_is_a_certain_relabelling():
    theta = np.eye(3)[[2, 0, 1, 2]]
    assert leep(theta, np.array([0, 1, 2, 0])) == pytest.approx(0.0, abs=1e-9)


def test_nce_equals_a_hand_computation():
    source = np.array([0, 0, 1, 1, 1, 2])
    labels = np.array([0, 1, 1, 1, 0, 2])
    # z=0 (2/6): y split 1/2, 1/2; z=1 (3/6): y=1 twice, y=0 once; z=2 (1/6): always y=2
    h = 2 / 6 * math.log(2) - 3 / 6 * (2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3)) + 0
    assert nce(source, labels) == pytest.approx(-h, rel=1e-12)
    probs = np.eye(3)[source] * 0.6 + 0.1  # argmax is the source label
    assert NCE().score(None, labels, probs) == pytest.approx(-h, rel=1e-12)


def test_hscore_equals_a_hand_computation():
    features = np.array([[1.0], [2.0], [3.0], [6.0]])
    labels = np.array([0, 0, 1, 1])
    # mean 3: var(f) = (4 + 1 + 0 + 9) / 4; class means 1.5 and 4.5: var(E[f|y]) = 1.5^2
    assert hscore(features, labels) == pytest.approx(2.25 / 3.5, rel=1e-12)
    two_d = np.array([[1.0, -3.0], [2.0, 3.0], [3.0, 1.0], [6.0, -1.0]])
    # the second feature has class means 0 and 0 and is uncorrelated with the first (-2*-3 + -1*3 + 0*1
    # + 3*-1 = 0): cov(f) is diagonal, cov(E[f|y]) lives on the first feature, so the score is unchanged
    assert hscore(two_d, labels) == pytest.approx(2.25 / 3.5, rel=1e-12)


def test_hscore_options_are_checked():
    with pytest.raises(UserError, match="shrinkage"):
        HScore(shrinkage="oas")
    good, random, labels = separable(5, n_per_class=4, classes=5, dim=300)
    shrunk = HScore(shrinkage="ledoit-wolf")
    assert shrunk.score(good, labels) > shrunk.score(random, labels)


def test_knn_is_one_on_perfectly_clustered_features_and_counts_mistakes():
    centres = np.array([[10.0, 0, 0], [0, 10.0, 0], [0, 0, 10.0]])
    labels = np.repeat(np.arange(3), 6)
    rng = np.random.default_rng(0)
    features = centres[labels] + rng.normal(scale=0.01, size=(18, 3))
    assert knn_accuracy(features, labels, k=5) == 1.0
    assert knn_accuracy(features, labels, k=1, metric="euclidean") == 1.0
    # one example of class 0 sitting inside class 1's cluster: it, and only it, is misclassified
    moved = features.copy()
    moved[0] = centres[1]
    assert knn_accuracy(moved, labels, k=3) == pytest.approx(17 / 18)


class NeedsProbs(Estimator):
    needs_source_predictions = True

    def score(self, features, labels, source_probs=None):
        return float(source_probs.sum())


class Broken(Estimator):
    def score(self, features, labels, source_probs=None):
        raise RuntimeError("singular\nsecond line")


class NotFinite(Estimator):
    def score(self, features, labels, source_probs=None):
        return float("nan")


def test_score_all_records_missing_predictions_errors_and_non_finite_scores():
    features, _, labels = separable(0)
    out = score_all({"p": NeedsProbs(), "broken": Broken(), "nan": NotFinite(), "leep": LEEP()}, features, labels, None)
    assert out["scores"] == {"p": None, "broken": None, "nan": None, "leep": None}
    assert out["errors"]["p"].startswith("not applicable") and out["errors"]["leep"].startswith("not applicable")
    assert out["errors"]["broken"] == "RuntimeError: singular" and out["errors"]["nan"] == "returned nan"
    probs = np.full((len(labels), 2), 0.5)
    assert score_all({"p": NeedsProbs()}, features, labels, probs)["scores"]["p"] == pytest.approx(len(labels))
