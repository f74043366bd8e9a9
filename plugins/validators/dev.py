"""`dev`: deep embedded validation (You et al., ICML 2019)."""

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from tlbench import hookimpl
from tlbench.plugin.validator import SOURCE, TARGET, Validator


def density_ratios(source_features: np.ndarray, target_features: np.ndarray, c: float = 1.0) -> np.ndarray:
    """w(x) = p_target(x) / p_source(x) at each source row, from a logistic-regression domain
    classifier (scikit-learn's: L2 penalty 1/2 |w|^2 against ``c`` times the summed log-loss,
    intercept unpenalised) on features standardised over source + target (population std):
    (n_s / n_t) * P(target | x) / P(source | x), P clipped to [1e-6, 1 - 1e-6]."""
    x = np.concatenate([source_features, target_features]).astype(np.float64)
    domain = np.r_[np.zeros(len(source_features)), np.ones(len(target_features))]
    scaler = StandardScaler().fit(x)
    classifier = LogisticRegression(C=c, max_iter=2000).fit(scaler.transform(x), domain)
    p_target = classifier.predict_proba(scaler.transform(source_features.astype(np.float64)))[:, 1]
    p_target = np.clip(p_target, 1e-6, 1 - 1e-6)
    return (len(source_features) / len(target_features)) * p_target / (1.0 - p_target)


def dev_risk(losses: np.ndarray, weights: np.ndarray) -> float:
    """The DEV estimate of the target risk from per-example source validation ``losses`` and
    density ratios ``weights``: mean(w l) + eta mean(w) - eta with the control-variate
    coefficient eta = -Cov(w l, w) / Var(w) (0 when the weights do not vary)."""
    losses, weights = np.asarray(losses, dtype=np.float64), np.asarray(weights, dtype=np.float64)
    weighted = weights * losses
    variance = np.var(weights, ddof=1) if len(weights) > 1 else 0.0
    eta = 0.0 if variance <= 0 else -np.cov(weighted, weights, ddof=1)[0, 1] / variance
    return float(weighted.mean() + eta * weights.mean() - eta)


class DeepEmbeddedValidation(Validator):
    """Importance-weighted source validation loss (lower is better): the cross-entropy on the
    held-out source slice, each example weighted by how target-like its features are (a
    logistic-regression domain classifier on backbone features), with DEV's control variate."""

    higher_is_better = False
    needs = (SOURCE, TARGET)
    defaults = {"c": 1.0, "max_points": 2000}
    option_ranges = {"c": (1e-12, 1000000.0), "max_points": (2, 1000000)}

    def score(self, inputs):
        target = inputs.target_features
        if len(target) > self.hparams["max_points"]:
            keep = torch.randperm(len(target), generator=inputs.generator)[: self.hparams["max_points"]]
            target = target[keep.to(target.device)]
        losses = torch.nn.functional.cross_entropy(inputs.source_logits.float(), inputs.source_labels, reduction="none")
        weights = density_ratios(inputs.source_features.float().cpu().numpy(), target.float().cpu().numpy(), self.hparams["c"])
        return dev_risk(losses.cpu().numpy(), weights)


@hookimpl
def register_validators(register):
    register("dev", DeepEmbeddedValidation)
