"""The first-party estimators against their definitions, on inputs small enough to check by hand."""

import math

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.stats import multivariate_normal

from tlbench.plugin.errors import UserError
from tlbench.plugin.estimator import Estimator
from tlbench.transferability.scoring import score_all
from tlbench_plugins.estimators.hscore import HScore, ShrunkHScore, hscore
from tlbench_plugins.estimators.knn import KNN, knn_accuracy
from tlbench_plugins.estimators.leep import LEEP, NCE, leep, nce
from tlbench_plugins.estimators.logme import LogME, logme


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


# -- every estimator against its paper's formula, written out here independently of the plugin --------
def bao_hscore(f, y):
    """Bao et al. (2019) as printed: tr(pinv(cov f) cov(E[f | y])), numpy's unbiased covariances."""
    g = np.stack([f[y == label].mean(axis=0) for label in y])  # row i: the mean of its class
    return float(np.trace(np.linalg.pinv(np.cov(f, rowvar=False), rcond=1e-15) @ np.cov(g, rowvar=False)))


def ledoit_wolf_by_hand(x):
    """Ledoit & Wolf (2004), Lemma 3.2-3.4 with the normalised Frobenius norm |A|^2 = tr(A A^T) / d:
    S = X^T X / n (rows centred), mu = tr S / d, delta^2 = |S - mu I|^2,
    b^2 = min(delta^2, sum_k |x_k x_k^T - S|^2 / n^2); intensity b^2 / delta^2, shrunk S."""
    n, d = x.shape
    s = x.T @ x / n
    mu = np.trace(s) / d
    delta2 = np.sum((s - mu * np.eye(d)) ** 2) / d
    b2 = sum(np.sum((np.outer(row, row) - s) ** 2) / d for row in x) / n**2
    intensity = min(b2, delta2) / delta2
    return (1 - intensity) * s + intensity * mu * np.eye(d), intensity


def regularised_hscore_by_hand(f, y):
    """Ibrahim et al. (2022): tr(Sigma_a^-1 (1 - a) cov(E[f | y])), both covariances over n."""
    f = f - f.mean(axis=0)
    shrunk, a = ledoit_wolf_by_hand(f)
    g = np.stack([f[y == label].mean(axis=0) for label in y])
    return float(np.trace(np.linalg.solve(shrunk, (1 - a) * g.T @ g / len(f)))), a


def issue_example():
    f = np.random.default_rng(0).normal(size=(40, 64))
    y = np.arange(40) % 4
    f[:, :4] += 2 * np.eye(4)[y]
    return f, y


@pytest.mark.parametrize("seed", [0, 1])
def test_hscore_equals_bao_et_al_on_random_features(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=30)
    f = rng.normal(size=(30, 5)) + 0.8 * rng.normal(size=(3, 5))[y]
    assert hscore(f, y) == pytest.approx(bao_hscore(f, y), rel=1e-10)
    assert HScore().score(f, y) == pytest.approx(bao_hscore(f, y), rel=1e-10)


def test_regularised_hscore_equals_ibrahim_et_al_on_the_issue_example():
    """Issue #27: 6.4843 before the (1 - a) factor, 0.4904 with it (a = 0.9244)."""
    f, y = issue_example()
    expected, a = regularised_hscore_by_hand(f, y)
    assert a == pytest.approx(0.9244, abs=1e-4) and expected == pytest.approx(0.4904, abs=1e-4)
    assert ShrunkHScore().score(f, y) == pytest.approx(expected, rel=1e-9)
    assert hscore(f, y, "ledoit-wolf") == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("shape", [(25, 8), (12, 30)])
def test_regularised_hscore_equals_ibrahim_et_al_on_random_features(shape):
    rng = np.random.default_rng(shape[1])
    y = np.arange(shape[0]) % 3
    f = rng.normal(size=shape) * rng.uniform(0.5, 2.0, size=shape[1]) + rng.normal(size=(3, shape[1]))[y]
    expected, a = regularised_hscore_by_hand(f, y)
    assert 0.0 < a < 1.0
    assert ShrunkHScore().score(f, y) == pytest.approx(expected, rel=1e-9)


def brute_force_logme(features, labels):
    """You et al. (2021) by definition: per class, max over alpha, beta of
    log N(y | 0, F F^T / alpha + I / beta) / n (Nelder-Mead in log space), then the class mean."""
    n = len(labels)

    def best_evidence(y):
        def negative(log_ab):
            alpha, beta = np.exp(log_ab)
            return -multivariate_normal(np.zeros(n), features @ features.T / alpha + np.eye(n) / beta).logpdf(y)
        return -minimize(negative, np.zeros(2), method="Nelder-Mead", options={"xatol": 1e-9, "fatol": 1e-11}).fun / n

    return float(np.mean([best_evidence((labels == k).astype(float)) for k in np.unique(labels)]))


def test_logme_is_the_maximised_log_evidence_with_more_dimensions_than_examples():
    rng = np.random.default_rng(7)
    labels = np.array([0, 1] * 5)
    features = rng.normal(size=(10, 16))
    features[:, 0] += 2.0 * labels
    assert logme(features, labels) == pytest.approx(brute_force_logme(features, labels), abs=1e-5)
    assert LogME().score(features, labels) == pytest.approx(brute_force_logme(features, labels), abs=1e-5)


def test_logme_stops_within_its_iteration_bound_whatever_its_options(monkeypatch):
    """A negative tolerance can never be met: the fixed point must still stop, at the hard cap."""
    import tlbench_plugins.estimators.logme as module

    counts = []
    real = module.fixed_point

    def counting(*args, **kwargs):
        alpha, beta, iterations = real(*args, **kwargs)
        counts.append(iterations)
        return alpha, beta, iterations

    monkeypatch.setattr(module, "fixed_point", counting)
    good, _, labels = separable(0)
    assert math.isfinite(LogME(tol=-1.0, max_iter=10**9).score(good, labels))
    assert counts == [module.MAX_ITERATIONS] * 5  # one fixed point per class, each stopped by the cap
    counts.clear()
    LogME(tol=-1.0, max_iter=7).score(good, labels)
    assert counts == [7] * 5
    counts.clear()
    LogME().score(good, labels)  # the defaults converge well before either bound
    assert counts and max(counts) < 100
    assert LogME.option_ranges["max_iter"][1] == module.MAX_ITERATIONS


def test_leep_equals_nguyen_et_al_written_as_loops():
    rng = np.random.default_rng(2)
    n, source_classes, classes = 20, 4, 3
    theta = rng.dirichlet(np.ones(source_classes), size=n)
    labels = rng.integers(0, classes, size=n)
    joint = [[sum(theta[i, z] for i in range(n) if labels[i] == y) / n for z in range(source_classes)] for y in range(classes)]
    marginal = [sum(joint[y][z] for y in range(classes)) for z in range(source_classes)]
    expected = sum(math.log(sum(joint[labels[i]][z] / marginal[z] * theta[i, z] for z in range(source_classes)))
                   for i in range(n)) / n
    assert LEEP().score(None, labels, theta) == pytest.approx(expected, rel=1e-12)


def test_nce_equals_tran_et_al_from_counts():
    rng = np.random.default_rng(3)
    source, labels = rng.integers(0, 4, size=40), rng.integers(0, 3, size=40)
    pairs = {}
    for z, y in zip(source, labels):
        pairs[(z, y)] = pairs.get((z, y), 0) + 1
    # -H(Y | Z) = sum_{z, y} P(z, y) log P(y | z)
    expected = sum(c / 40 * math.log(c / np.sum(source == z)) for (z, y), c in pairs.items())
    probs = np.full((40, 4), 0.1)
    probs[np.arange(40), source] = 0.7
    assert NCE().score(None, labels, probs) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("metric,k", [("cosine", 3), ("euclidean", 5), ("cosine", 1)])
def test_knn_equals_scikit_learn_leave_one_out(metric, k):
    """Two classes and an odd k: no vote ties, so scikit-learn's classifier is a reference."""
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(k)
    labels = rng.integers(0, 2, size=30)
    features = rng.normal(size=(30, 4)) + 0.7 * labels[:, None] + np.array([3.0, 0, 0, 0])
    correct = 0
    for i in range(30):
        others = np.arange(30) != i
        clf = KNeighborsClassifier(n_neighbors=k, metric=metric, algorithm="brute").fit(features[others], labels[others])
        correct += int(clf.predict(features[i : i + 1])[0] == labels[i])
    assert 0 < correct < 30  # not a trivial case
    assert KNN(k=k, metric=metric).score(features, labels) == pytest.approx(correct / 30)
