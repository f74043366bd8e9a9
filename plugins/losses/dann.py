"""`dann`: domain-adversarial training (Ganin & Lempitsky, 2015).

A domain discriminator learns to tell source from target features; a gradient-reversal layer
makes the backbone learn features that fool it. The discriminator is owned by the loss, so it
trains with the model but is never exported.

Conventions: source is labelled 1, target 0, the BCE (with logits) is averaged over the
concatenated batch; the discriminator descends that BCE while the features receive
``-lambda(p)`` times its gradient, ``lambda(p) = 2 / (1 + exp(-gamma p)) - 1`` over training
progress ``p`` (Ganin & Lempitsky's ramp).
"""

import torch
import torch.nn.functional as F
from torch import nn

from tlbench import hookimpl
from tlbench.plugin.contracts import AdaptationLoss

from .grl import dann_schedule, reverse_gradient
from .recipe import RECIPE_SPACE, UDA_RECIPE, weight_space


def domain_discriminator(in_features: int, hidden: int) -> nn.Module:
    """A 2-layer MLP giving one source-vs-target logit."""
    return nn.Sequential(
        nn.Linear(in_features, hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(0.1),
        nn.Linear(hidden, 1),
    )


def domain_bce(discriminator: nn.Module, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of the discriminator: source labelled 1, target 0."""
    logits = discriminator(torch.cat([source, target])).squeeze(1)
    labels = torch.cat([torch.ones(len(source)), torch.zeros(len(target))]).to(logits.device)
    return F.binary_cross_entropy_with_logits(logits, labels)


class DANN(AdaptationLoss):
    """Adversarial domain confusion through gradient reversal with the usual lambda ramp."""

    defaults = {"weight": 1.0, "hidden": 256, "gamma": 10.0, **UDA_RECIPE}
    option_ranges = {"weight": (0.0, 1000000.0), "hidden": (1, 65536), "gamma": (0.0, 1000.0)}
    search_space = {**weight_space(0.1, 10.0), **RECIPE_SPACE}

    def setup(self, feature_dim, num_classes, ctx):
        self.discriminator = domain_discriminator(feature_dim, int(self.hparams["hidden"]))

    def domain_loss(self, batch, coeff: float) -> torch.Tensor:
        """The discriminator's loss, with the features' gradient multiplied by ``-coeff``."""
        source = reverse_gradient(batch.source_features, coeff)
        target = reverse_gradient(batch.target_features, coeff)
        return domain_bce(self.discriminator, source, target)

    def forward(self, batch):
        return self.domain_loss(batch, dann_schedule(batch.progress, self.hparams["gamma"]))


@hookimpl
def register_adaptation_losses(register):
    register("dann", DANN)
