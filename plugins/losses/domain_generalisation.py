"""Domain-generalisation algorithms: objectives over several labeled source domains that never
look at the target (DomainBed's, Gulrajani & Lopez-Paz, 2021). Each step draws ``batch_size``
examples from every source domain (DomainBed's sampling) and the loss sees them with their
domain index (``AdaptationBatch.source_domains``) and labels.

- ``erm``: the same loop with no penalty: the control every algorithm here is compared with.
- ``irm``: IRMv1 (Arjovsky et al., 2019): per domain, the squared gradient of the risk with
  respect to a dummy classifier scale, estimated from two halves of the domain's batch; weight 1
  for the first ``anneal_steps`` steps, then ``weight``.
- ``vrex``: V-REx (Krueger et al., 2021): the variance of the per-domain risks, annealed the same way.
- ``groupdro``: Group DRO (Sagawa et al., 2020): the risks weighted by ``q``, which grows
  exponentially (rate ``eta``) for the domains with the highest risk; replaces the mean risk.
- ``mixup``: inter-domain Mixup (Yan et al., 2020; DomainBed's version): domains paired at random,
  inputs and labels mixed with ``lambda ~ Beta(alpha, alpha)``; replaces the plain risk.
- ``coral-dg``, ``mmd-dg``, ``dann-dg``: CORAL, MMD and DANN aligning every pair of source
  domains (DomainBed's multi-domain versions): mean and covariance differences, tlbench's
  multi-kernel MMD, and a discriminator that tells the source domains apart through gradient
  reversal.

Defaults and search ranges are DomainBed's (its ``hparams_registry``): Adam at 1e-3, no weight
decay, no schedule; IRM lambda 1e2 (1e-1..1e5), anneal 500 steps (1..1e4); V-REx lambda 10
(1e-1..1e5); Group DRO eta 1e-2 (1e-3..1e-1); Mixup alpha 0.2 (1e-1..1e1); CORAL/MMD gamma 1
(1e-1..1e1); DANN lambda 1 (1e-2..1e2). What differs: IRM and V-REx keep the optimizer's state
when the penalty switches on (DomainBed restarts Adam), and DANN trains its discriminator through
gradient reversal in the same step (DomainBed alternates discriminator and generator steps).
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tlbench import hookimpl
from tlbench.plugin.contracts import AdaptationLoss

from .grl import reverse_gradient
from .mmd import mk_mmd

DG_RECIPE = {"optimizer": "adam", "lr": 0.001, "weight_decay": 0.0, "schedule": "constant"}
DG_RECIPE_SPACE = {"lr": {"low": 10 ** -4.5, "high": 10 ** -2.5, "log": True}}


def domain_groups(domains: torch.Tensor) -> list[torch.Tensor]:
    """Row indices of each domain present in ``domains``, by domain index."""
    return [torch.nonzero(domains == d).flatten() for d in torch.unique(domains).tolist()]


def _log_space(name: str, low: float, high: float) -> dict:
    """A log-uniform search range (whole numbers when the option's default is one)."""
    return {name: {"low": low, "high": high, "log": True}}


class DomainLoss(AdaptationLoss):
    """Base of the domain-generalisation objectives: source domains only, never the target."""

    domain_generalisation = True
    needs_target_unlabeled = False
    min_source_domains = 2
    defaults = {"weight": 1.0, **DG_RECIPE}
    search_space = dict(DG_RECIPE_SPACE)

    def setup(self, feature_dim, num_classes, ctx):
        self.total_steps = max(1, int(ctx.steps))

    def step_of(self, batch) -> int:
        return int(round(batch.progress * self.total_steps))

    def groups(self, batch) -> list[torch.Tensor]:
        return domain_groups(batch.source_domains)


class ERM(DomainLoss):
    """Cross-entropy on every source domain's batch, nothing else (the control)."""

    min_source_domains = 1
    defaults = dict(DG_RECIPE)

    def forward(self, batch):
        return None


class _Annealed(DomainLoss):
    """A penalty weighted 1 for the first ``anneal_steps`` steps, then ``weight`` (the loop
    multiplies by ``weight``, so the first steps return penalty / weight)."""

    def annealed(self, batch, penalty: torch.Tensor) -> torch.Tensor:
        if self.step_of(batch) < int(self.hparams["anneal_steps"]):
            return penalty / max(self.weight, 1e-12)
        return penalty


class IRM(_Annealed):
    defaults = {"weight": 100.0, "anneal_steps": 500, **DG_RECIPE}
    option_ranges = {"weight": (0.0, 1e9), "anneal_steps": (0, 10_000_000)}
    search_space = {**_log_space("weight", 1e-1, 1e5), **_log_space("anneal_steps", 1, 10_000), **DG_RECIPE_SPACE}

    def forward(self, batch):
        penalties = []
        for rows in self.groups(batch):
            logits, labels = batch.source_logits[rows], batch.source_labels[rows]
            scale = torch.ones((), device=logits.device, requires_grad=True)
            first = F.cross_entropy(logits[0::2] * scale, labels[0::2])
            second = F.cross_entropy(logits[1::2] * scale, labels[1::2])
            g1 = torch.autograd.grad(first, [scale], create_graph=True)[0]
            g2 = torch.autograd.grad(second, [scale], create_graph=True)[0]
            penalties.append(g1 * g2)
        return self.annealed(batch, torch.stack(penalties).mean())


class VREx(_Annealed):
    defaults = {"weight": 10.0, "anneal_steps": 500, **DG_RECIPE}
    option_ranges = {"weight": (0.0, 1e9), "anneal_steps": (0, 10_000_000)}
    search_space = {**_log_space("weight", 1e-1, 1e5), **_log_space("anneal_steps", 1, 10_000), **DG_RECIPE_SPACE}

    def forward(self, batch):
        risks = torch.stack([F.cross_entropy(batch.source_logits[r], batch.source_labels[r]) for r in self.groups(batch)])
        return self.annealed(batch, ((risks - risks.mean()) ** 2).mean())


class GroupDRO(DomainLoss):
    """Replaces the mean risk: sum over domains of q_d * risk_d, q updated before each step."""

    uses_source_labels = False
    defaults = {"weight": 1.0, "eta": 0.01, **DG_RECIPE}
    option_ranges = {"weight": (0.0, 1e9), "eta": (0.0, 1e6)}
    search_space = {**_log_space("eta", 1e-3, 1e-1), **DG_RECIPE_SPACE}

    def setup(self, feature_dim, num_classes, ctx):
        super().setup(feature_dim, num_classes, ctx)
        n = max(1, len(ctx.source_domains))
        self.register_buffer("q", torch.full((n,), 1.0 / n), persistent=False)

    def forward(self, batch):
        ids = torch.unique(batch.source_domains).tolist()  # the order of self.groups(batch)
        risks = torch.stack([F.cross_entropy(batch.source_logits[r], batch.source_labels[r]) for r in self.groups(batch)])
        q = self.q.to(risks.device)
        q[ids] = q[ids] * torch.exp(float(self.hparams["eta"]) * risks.detach())
        self.q = q / q.sum()
        return (self.q[ids] * risks).sum()


class Mixup(DomainLoss):
    """Replaces the risk: domains paired in a random cycle, inputs mixed, both labels weighted."""

    uses_source_labels = False
    defaults = {"weight": 1.0, "alpha": 0.2, **DG_RECIPE}
    option_ranges = {"weight": (0.0, 1e9), "alpha": (1e-6, 1e6)}
    search_space = {**_log_space("alpha", 1e-1, 1e1), **DG_RECIPE_SPACE}

    def setup(self, feature_dim, num_classes, ctx):
        super().setup(feature_dim, num_classes, ctx)
        self.generator = ctx.generator
        self.rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=ctx.generator)))

    def forward(self, batch):
        groups = self.groups(batch)
        order = torch.randperm(len(groups), generator=self.generator).tolist()
        losses = []
        for a, b in zip(order, order[1:] + order[:1]):
            i, j = groups[a], groups[b]
            n = min(len(i), len(j))
            lam = float(self.rng.beta(self.hparams["alpha"], self.hparams["alpha"]))
            x = lam * batch.source_inputs[i[:n]] + (1 - lam) * batch.source_inputs[j[:n]]
            logits = batch.model(x)
            losses.append(lam * F.cross_entropy(logits, batch.source_labels[i[:n]])
                          + (1 - lam) * F.cross_entropy(logits, batch.source_labels[j[:n]]))
        return torch.stack(losses).mean()


def _pairs(groups: list[torch.Tensor]):
    return [(groups[a], groups[b]) for a in range(len(groups)) for b in range(a + 1, len(groups))]


def mean_and_covariance_gap(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of the feature means plus that of the feature covariances."""
    def cov(z):
        centred = z - z.mean(0, keepdim=True)
        return centred.T @ centred / max(len(z) - 1, 1)
    return (x.mean(0) - y.mean(0)).pow(2).mean() + (cov(x) - cov(y)).pow(2).mean()


class _PairwiseGap(DomainLoss):
    """The mean of ``gap(features of domain a, features of domain b)`` over every pair of domains."""

    defaults = {"weight": 1.0, **DG_RECIPE}
    option_ranges = {"weight": (0.0, 1e9)}
    search_space = {**_log_space("weight", 1e-1, 1e1), **DG_RECIPE_SPACE}
    gap = None  # set by each subclass

    def forward(self, batch):
        f = batch.source_features
        return torch.stack([type(self).gap(f[i], f[j]) for i, j in _pairs(self.groups(batch))]).mean()


class CORALDomains(_PairwiseGap):
    gap = staticmethod(mean_and_covariance_gap)


class MMDDomains(_PairwiseGap):
    gap = staticmethod(mk_mmd)


class DANNDomains(DomainLoss):
    """A discriminator (``depth`` layers of ``hidden`` units) names each example's source domain;
    the features get its gradient reversed."""

    defaults = {"weight": 1.0, "hidden": 256, "depth": 3, **DG_RECIPE}
    option_ranges = {"weight": (0.0, 1e9), "hidden": (1, 65536), "depth": (1, 16)}
    search_space = {**_log_space("weight", 1e-2, 1e2), **DG_RECIPE_SPACE}

    def setup(self, feature_dim, num_classes, ctx):
        super().setup(feature_dim, num_classes, ctx)
        hidden, layers, width = int(self.hparams["hidden"]), [], feature_dim
        for _ in range(int(self.hparams["depth"]) - 1):
            layers += [nn.Linear(width, hidden), nn.ReLU(inplace=True)]
            width = hidden
        self.discriminator = nn.Sequential(*layers, nn.Linear(width, max(2, len(ctx.source_domains))))

    def forward(self, batch):
        logits = self.discriminator(reverse_gradient(batch.source_features, 1.0))
        return F.cross_entropy(logits, batch.source_domains)


@hookimpl
def register_adaptation_losses(register):
    register("erm", ERM, description="the domain-generalisation loop without a penalty (control)")
    register("irm", IRM, description="IRMv1 penalty (Arjovsky et al., 2019)")
    register("vrex", VREx, description="variance of the per-domain risks (Krueger et al., 2021)")
    register("groupdro", GroupDRO, description="worst-domain-weighted risk (Sagawa et al., 2020)")
    register("mixup", Mixup, description="inter-domain Mixup (Yan et al., 2020)")
    register("coral-dg", CORALDomains, description="CORAL between every pair of source domains")
    register("mmd-dg", MMDDomains, description="multi-kernel MMD between every pair of source domains")
    register("dann-dg", DANNDomains, description="a discriminator of the source domains, gradient reversed")
