"""`source-val`, `entropy`, `im` and `target-oracle`: validators that read predictions only."""

import torch

from tlbench import hookimpl
from tlbench.plugin.validator import SOURCE, TARGET, TARGET_TEST, Validator, entropy


class SourceAccuracy(Validator):
    """Accuracy on the held-out slice of the labeled source training data (DomainBed's
    training-domain validation). Blind to the shift: it rewards fitting the source."""

    needs = (SOURCE,)

    def score(self, inputs):
        return float((inputs.source_logits.argmax(1) == inputs.source_labels).float().mean())


class MeanEntropy(Validator):
    """Mean entropy of the target predictions (lower is better): confident target predictions
    are read as good ones (Morerio et al., 2018). A model that collapses onto one class scores best."""

    higher_is_better = False
    needs = (TARGET,)

    def score(self, inputs):
        return float(entropy(inputs.target_logits).mean())


def information_maximization(logits: torch.Tensor) -> float:
    """Entropy of the mean target prediction minus the mean per-example entropy: high when each
    prediction is confident AND the classes are used evenly; collapsed predictions lose the first term."""
    probs = torch.softmax(logits.float(), dim=1)
    mean = probs.mean(0)
    marginal = float(-(mean * mean.clamp_min(1e-12).log()).sum())
    return marginal - float(entropy(logits).mean())


class InformationMaximization(Validator):
    """Information maximisation (IM) score on target predictions: H(mean p) - mean H(p)
    (higher is better; as used for model selection by Musgrave et al., 2022)."""

    needs = (TARGET,)

    def score(self, inputs):
        return information_maximization(inputs.target_logits)


class TargetOracle(Validator):
    """ORACLE: accuracy on the labeled target TEST split. Not available in practice; reported
    to show the headroom and the regret of every honest validator, never as a fair result."""

    needs = (TARGET_TEST,)
    reads_target_test_labels = True

    def score(self, inputs):
        return float((inputs.target_test_logits.argmax(1) == inputs.target_test_labels).float().mean())


@hookimpl
def register_validators(register):
    register("source-val", SourceAccuracy)
    register("entropy", MeanEntropy)
    register("im", InformationMaximization)
    register("target-oracle", TargetOracle)
