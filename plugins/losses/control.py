"""`control`: the adaptation loop with the adaptation term switched off.

Source cross-entropy, labeled target shots if any, and unlabeled target batches passing through
the backbone (and its BatchNorm) exactly as under an adaptation loss, with the same recipe, but
no adaptation term. A loss's gain over `control` is what its term adds; a gain over `none` (the
untouched source model at --shots 0) also counts the target batches' effect on BatchNorm and the
extra source training.
"""

from tlbench import hookimpl
from tlbench.plugin.contracts import AdaptationLoss

from .recipe import RECIPE_SPACE, UDA_RECIPE


class Control(AdaptationLoss):
    """Feeds the adaptation mix, returns no term."""

    defaults = {**UDA_RECIPE}
    search_space = dict(RECIPE_SPACE)  # the same learning-rate range as the losses it controls for

    def forward(self, batch):
        return None


@hookimpl
def register_adaptation_losses(register):
    register("control", Control)
