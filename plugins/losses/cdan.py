"""`cdan`: conditional domain-adversarial training (Long et al., 2018).

The domain discriminator sees the multilinear map f ⊗ g of features f and class predictions g
(``features x classes`` inputs), so it aligns the joint distribution of features and classes
instead of features alone. Beyond ``max_map_dim`` a fixed random projection replaces the full
outer product, as in the paper: ``(f R_f) * (g R_g) / sqrt(max_map_dim)`` with fixed Gaussian
``R_f``, ``R_g``. With ``entropy_conditioning`` (CDAN+E) confident examples weigh more in the
discriminator loss. Conventions: ``g = softmax(logits)`` only conditions (no gradient flows
into the logits through it); source is labelled 1, target 0; the BCE is averaged over the
batch; the features' gradient is reversed with the DANN ramp (`dann`).
"""

import torch
import torch.nn.functional as F

from tlbench import hookimpl
from tlbench.plugin.contracts import AdaptationLoss

from .dann import domain_discriminator
from .entropy import prediction_entropy
from .grl import dann_schedule, reverse_gradient
from .recipe import RECIPE_SPACE, UDA_RECIPE, weight_space


def multilinear_map(features: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """Flattened outer product per example: ``(n, d)``, ``(n, c)`` -> ``(n, d * c)``."""
    return torch.bmm(features.unsqueeze(2), probs.unsqueeze(1)).flatten(1)


def entropy_weights(probs: torch.Tensor) -> torch.Tensor:
    """CDAN+E example weights 1 + exp(-H(g)) (H in nats), normalised to mean 1 over the whole
    source + target batch, as Transfer-Learning-Library does (the CDAN authors' code normalises
    each domain's weights separately)."""
    log_p = torch.log(probs.clamp_min(1e-12))
    w = 1.0 + torch.exp(-(-(probs * log_p).sum(1)))
    return w / w.sum() * len(w)


class CDAN(AdaptationLoss):
    """Conditional adversarial loss on f ⊗ softmax(logits) through gradient reversal."""

    defaults = {"weight": 1.0, "hidden": 256, "gamma": 10.0, "entropy_conditioning": True, "max_map_dim": 4096, **UDA_RECIPE}
    option_ranges = {"weight": (0.0, 1000000.0), "hidden": (1, 65536), "gamma": (0.0, 1000.0), "max_map_dim": (1, 1048576)}
    search_space = {**weight_space(0.1, 10.0), **RECIPE_SPACE}

    def setup(self, feature_dim, num_classes, ctx):
        self.map_dim = feature_dim * num_classes
        self.randomized = self.map_dim > int(self.hparams["max_map_dim"])
        if self.randomized:
            dim = int(self.hparams["max_map_dim"])
            gen = torch.Generator().manual_seed(0)
            self.register_buffer("random_f", torch.randn(feature_dim, dim, generator=gen))
            self.register_buffer("random_g", torch.randn(num_classes, dim, generator=gen))
            self.map_dim = dim
        self.discriminator = domain_discriminator(self.map_dim, int(self.hparams["hidden"]))

    def discriminator_input(self, features: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """What the discriminator sees: f ⊗ g (or its random projection); g carries no gradient."""
        probs = F.softmax(logits, dim=1).detach()
        if self.randomized:
            dim = self.random_f.shape[1]
            return (features @ self.random_f) * (probs @ self.random_g) / dim**0.5
        return multilinear_map(features, probs)

    def forward(self, batch):
        return self.domain_loss(batch, dann_schedule(batch.progress, self.hparams["gamma"]))

    def domain_loss(self, batch, coeff: float) -> torch.Tensor:
        """The discriminator's loss, with the features' gradient multiplied by ``-coeff``."""
        features = torch.cat([batch.source_features, batch.target_features])
        logits = torch.cat([batch.source_logits, batch.target_logits])
        h = reverse_gradient(self.discriminator_input(features, logits), coeff)
        domain_logits = self.discriminator(h).squeeze(1)
        n_s = len(batch.source_features)
        labels = torch.cat([torch.ones(n_s), torch.zeros(len(features) - n_s)]).to(domain_logits.device)
        weights = None
        if self.hparams["entropy_conditioning"]:
            weights = entropy_weights(F.softmax(logits, dim=1).detach())
        return F.binary_cross_entropy_with_logits(domain_logits, labels, weight=weights)


@hookimpl
def register_adaptation_losses(register):
    register("cdan", CDAN)
