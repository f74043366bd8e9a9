"""The first-party validators on hand-made cases, and what each one is (not) handed."""

import math

import numpy as np
import pytest
import torch

from tlbench.plugin.contracts import Split
from tlbench.plugin.validator import ValidationInputs, entropy
from tlbench.search.scoring import score_validators, validation_inputs
from tlbench.training.model import TransferModel
from tlbench_plugins.validators.dev import DeepEmbeddedValidation, density_ratios, dev_risk
from tlbench_plugins.validators.prediction import InformationMaximization, MeanEntropy, SourceAccuracy, TargetOracle
from tlbench_plugins.validators.snd import SoftNeighborhoodDensity, soft_neighborhood_density


def tiny_model():
    torch.manual_seed(0)
    backbone = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 5))
    backbone.out_features = 5
    return TransferModel(backbone, 3)


def one_hot_logits(labels, classes=4, scale=100.0):
    return torch.nn.functional.one_hot(torch.as_tensor(labels), classes).float() * scale - scale / 2


def test_entropy_of_one_hot_predictions_is_zero_and_of_uniform_ones_log_k():
    exact = torch.full((5, 4), float("-inf")).scatter(1, torch.tensor([[0], [1], [2], [3], [1]]), 0.0)  # p exactly one-hot
    assert MeanEntropy().score(ValidationInputs(target_logits=exact)) == 0.0
    assert MeanEntropy().score(ValidationInputs(target_logits=one_hot_logits([0, 1, 2, 3, 1]))) == pytest.approx(0.0, abs=1e-12)
    assert MeanEntropy().score(ValidationInputs(target_logits=torch.zeros(6, 4))) == pytest.approx(math.log(4))
    assert MeanEntropy.higher_is_better is False


def test_im_is_maximal_for_confident_balanced_predictions_and_lower_when_collapsed():
    balanced = InformationMaximization().score(ValidationInputs(target_logits=one_hot_logits([0, 1, 2, 3] * 5)))
    collapsed = InformationMaximization().score(ValidationInputs(target_logits=one_hot_logits([2] * 20)))
    unsure = InformationMaximization().score(ValidationInputs(target_logits=torch.zeros(20, 4)))
    assert balanced == pytest.approx(math.log(4))  # the largest value IM can take with 4 classes
    assert collapsed == pytest.approx(0.0, abs=1e-6) and unsure == pytest.approx(0.0, abs=1e-6)
    half = InformationMaximization().score(ValidationInputs(target_logits=one_hot_logits([0, 1] * 10)))
    assert collapsed < half < balanced


def test_snd_is_higher_for_clustered_than_for_scattered_target_features():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 16, generator=g) * 5
    clustered = centres.repeat_interleave(30, 0) + 0.05 * torch.randn(120, 16, generator=g)
    scattered = torch.randn(120, 16, generator=g)
    assert soft_neighborhood_density(clustered) > soft_neighborhood_density(scattered) + 1.0
    # the validator reads softmax predictions: clustered confident predictions beat scattered unsure ones
    tight = SoftNeighborhoodDensity().score(ValidationInputs(target_logits=one_hot_logits([0, 1, 2, 3] * 30, scale=8.0)
                                                             + 0.01 * torch.randn(120, 4, generator=g), generator=g))
    loose = SoftNeighborhoodDensity().score(ValidationInputs(target_logits=torch.randn(120, 4, generator=g), generator=g))
    assert tight > loose


def test_dev_risk_equals_a_hand_computation():
    # w l = [0.5, 2, 4.5, 8] (mean 3.75); mean w = 1.25; Var(w) = 1.25 / 3; Cov(w l, w) = 6.25 / 3
    # eta = -Cov / Var = -5; DEV = 3.75 + eta * 1.25 - eta = 2.5
    assert dev_risk([1.0, 2.0, 3.0, 4.0], [0.5, 1.0, 1.5, 2.0]) == pytest.approx(2.5)
    assert dev_risk([1.0, 3.0], [1.0, 1.0]) == pytest.approx(2.0)  # equal weights: the plain mean loss


def test_dev_validator_weights_the_source_loss_by_how_target_like_each_example_is():
    g = torch.Generator().manual_seed(1)
    source = torch.randn(200, 3, generator=g)
    target = torch.randn(300, 3, generator=g) + torch.tensor([1.5, 0.0, 0.0])
    weights = density_ratios(source.numpy(), target.numpy())
    assert weights[source[:, 0] > 1].mean() > 3 * weights[source[:, 0] < -1].mean()  # target-like rows count more
    logits, labels = torch.randn(200, 3, generator=g), torch.randint(0, 3, (200,), generator=g)
    inputs = ValidationInputs(source_features=source, source_logits=logits, source_labels=labels, target_features=target,
                              generator=g)
    assert DeepEmbeddedValidation().score(inputs) == pytest.approx(dev_by_hand(source.numpy(), target.numpy(), logits.numpy(),
                                                                         labels.numpy(), c=1.0), rel=1e-3)  # lbfgs stops at tol=1e-4
    assert DeepEmbeddedValidation.higher_is_better is False


def test_accuracy_validators_and_which_inputs_each_one_is_handed():
    logits = one_hot_logits([0, 1, 2, 3])
    assert SourceAccuracy().score(ValidationInputs(source_logits=logits, source_labels=torch.tensor([0, 1, 0, 3]))) == 0.75
    assert TargetOracle().score(ValidationInputs(target_test_logits=logits, target_test_labels=torch.tensor([0, 1, 2, 3]))) == 1.0
    assert TargetOracle.reads_target_test_labels and not any(
        v.reads_target_test_labels for v in (SourceAccuracy, MeanEntropy, InformationMaximization, SoftNeighborhoodDensity,
                                             DeepEmbeddedValidation))
    model = tiny_model()
    split = Split(torch.randn(10, 4), torch.randint(0, 3, (10,)))
    inputs = validation_inputs(model, {"target"}, None, split.x, split, 4, seed=0)
    assert inputs.target_logits.shape == (10, 3) and inputs.target_features.shape == (10, 5)
    assert inputs.target_test_labels is None and inputs.source_labels is None
    assert validation_inputs(model, {"source", "target"}, None, split.x, split, 4, seed=0) is None  # no source slice


def test_every_registered_validator_scores_a_model_and_a_broken_one_costs_only_its_score(registry):
    from tlbench.plugin.registry import Provenance, Registry

    reg = Registry()
    for name, entry in registry.entries["validators"].items():
        reg.add("validators", name, entry.obj, entry.meta, entry.provenance)

    class Broken(MeanEntropy):
        def score(self, inputs):
            raise RuntimeError("boom")

    reg.add("validators", "broken", Broken, {}, Provenance("test"))
    model = tiny_model()
    source, target = Split(torch.randn(30, 4), torch.randint(0, 3, (30,))), Split(torch.randn(40, 4), torch.randint(0, 3, (40,)))
    out = score_validators(reg, model, source, target.x, target, 16, seed=0)
    scores = out["validator_scores"]
    assert {"source-val", "entropy", "im", "snd", "dev", "target-oracle"} <= set(scores)
    assert all(isinstance(scores[n], float) and np.isfinite(scores[n]) for n in scores if n != "broken")
    assert scores["broken"] is None and "boom" in out["validators"]["broken"]["error"]
    assert out["validators"]["target-oracle"]["oracle"] and not out["validators"]["entropy"]["oracle"]
    without_source = score_validators(reg, model, None, target.x, target, 16, seed=0)["validator_scores"]
    assert without_source["source-val"] is None and without_source["dev"] is None
    assert without_source["entropy"] == scores["entropy"]
    assert entropy(torch.zeros(1, 2)).item() == pytest.approx(math.log(2))


# -- every validator against its paper's formula, written out here in numpy ---------------------------
def softmax_np(logits):
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def random_logits(seed, n=25, classes=4, scale=2.0):
    return np.random.default_rng(seed).normal(size=(n, classes)) * scale


def dev_by_hand(source, target, logits, labels, c):
    """You et al. (2019), DEV: a logistic-regression domain classifier on standardised features
    (population std), fitted here by minimising 1/2 |w|^2 + c * sum of log-losses (intercept not
    penalised, scikit-learn's objective) with scipy; w(x) = n_s / n_t * P(t | x) / P(s | x);
    risk = mean(w l) + eta mean(w) - eta, eta = -Cov(w l, w) / Var(w)."""
    from scipy.optimize import minimize

    x = np.concatenate([source, target]).astype(np.float64)
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    sign = np.r_[-np.ones(len(source)), np.ones(len(target))]  # target = +1

    def objective(wb):
        margin = sign * (x @ wb[:-1] + wb[-1])
        grad_margin = -sign / (1 + np.exp(margin))
        value = 0.5 * wb[:-1] @ wb[:-1] + c * np.logaddexp(0, -margin).sum()
        grad = np.r_[wb[:-1] + c * x.T @ grad_margin, c * grad_margin.sum()]
        return value, grad

    wb = minimize(objective, np.zeros(x.shape[1] + 1), jac=True, method="BFGS", options={"gtol": 1e-10}).x
    p_target = 1 / (1 + np.exp(-(x[: len(source)] @ wb[:-1] + wb[-1])))
    w = len(source) / len(target) * p_target / (1 - p_target)
    losses = -np.log(softmax_np(logits)[np.arange(len(labels)), labels])
    wl = w * losses
    eta = -np.mean((wl - wl.mean()) * (w - w.mean())) / np.mean((w - w.mean()) ** 2)
    return float(wl.mean() + eta * w.mean() - eta)


def test_dev_equals_you_et_al_with_a_domain_classifier_fitted_here():
    rng = np.random.default_rng(4)
    source, target = rng.normal(size=(60, 3)), rng.normal(size=(80, 3)) * [1.0, 2.0, 1.0] + [1.0, 0.0, -0.5]
    logits, labels = random_logits(5, n=60, classes=3), rng.integers(0, 3, size=60)
    for c in (1.0, 0.05):  # a small C: the penalty (and so the standardisation) matters
        inputs = ValidationInputs(source_features=torch.tensor(source), source_logits=torch.tensor(logits),
                                  source_labels=torch.tensor(labels), target_features=torch.tensor(target),
                                  generator=torch.Generator().manual_seed(0))
        expected = dev_by_hand(source, target, logits, labels, c)
        assert DeepEmbeddedValidation(c=c).score(inputs) == pytest.approx(expected, rel=1e-4)


def test_entropy_and_im_equal_scipy_entropies():
    from scipy.stats import entropy as scipy_entropy

    logits = random_logits(0)
    p = softmax_np(logits)
    per_example = scipy_entropy(p, axis=1)
    inputs = ValidationInputs(target_logits=torch.tensor(logits))
    assert MeanEntropy().score(inputs) == pytest.approx(per_example.mean(), rel=1e-6)
    # IM (Musgrave et al., 2022): H(mean_i p_i) - mean_i H(p_i)
    assert InformationMaximization().score(inputs) == pytest.approx(scipy_entropy(p.mean(axis=0)) - per_example.mean(), rel=1e-6)


def test_snd_equals_saito_et_al_written_as_loops():
    """Saito et al. (2021): L2-normalised softmax vectors, cosine similarity / T to every other
    row, softmax over those n - 1 neighbours, entropy, mean over rows."""
    logits = random_logits(1, n=12, classes=3)
    z = softmax_np(logits)
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    total = 0.0
    for i in range(len(z)):
        sims = np.array([z[i] @ z[j] / 0.05 for j in range(len(z)) if j != i])
        q = np.exp(sims - sims.max())
        q /= q.sum()
        total += -np.sum(q * np.log(q))
    inputs = ValidationInputs(target_logits=torch.tensor(logits), generator=torch.Generator().manual_seed(0))
    assert SoftNeighborhoodDensity().score(inputs) == pytest.approx(total / len(z), rel=1e-5)


def test_source_accuracy_and_oracle_equal_numpy_argmax_accuracy():
    logits = random_logits(2, n=40)
    labels = np.random.default_rng(3).integers(0, 4, size=40)
    labels[:15] = logits[:15].argmax(axis=1)  # some right, some wrong
    expected = float(np.mean(logits.argmax(axis=1) == labels))
    assert 0.3 < expected < 1.0
    assert SourceAccuracy().score(ValidationInputs(source_logits=torch.tensor(logits), source_labels=torch.tensor(labels))) \
        == pytest.approx(expected)
    assert TargetOracle().score(ValidationInputs(target_test_logits=torch.tensor(logits),
                                                 target_test_labels=torch.tensor(labels))) == pytest.approx(expected)
