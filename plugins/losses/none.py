"""`none`: no adaptation loss (source-only / plain supervised transfer)."""

from tlbench import hookimpl
from tlbench.plugin.contracts import AdaptationLoss


class NoAdaptation(AdaptationLoss):
    """Adds nothing; the loop never samples unlabeled target data for it."""

    defaults = {}
    needs_target_unlabeled = False
    needs_shared_labels = False


@hookimpl
def register_adaptation_losses(register):
    register("none", NoAdaptation)
