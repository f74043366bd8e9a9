"""`adabn`: adaptive batch normalisation (Li et al., 2016), the classic training-free baseline.

No gradient step at all: the source model keeps every weight, and each BatchNorm layer's
running mean and variance are recomputed on unlabeled target inputs, so target features are
normalised with target statistics. Needs a backbone with BatchNorm (otherwise it equals `none`)
and a strategy that leaves the BatchNorm layers trainable (`finetune`, `scratch` would start
from random weights); under `linear-probe` the frozen backbone keeps its statistics.
"""

from tlbench import hookimpl
from tlbench.plugin.contracts import AdaptationLoss


class AdaBN(AdaptationLoss):
    """Target BatchNorm statistics on the source model; no training."""

    defaults = {}
    gradient_steps = False
    bn_statistics = "target"
    needs_target_unlabeled = True

    def forward(self, batch):  # never called: no gradient steps
        return None


@hookimpl
def register_adaptation_losses(register):
    register("adabn", AdaBN)
