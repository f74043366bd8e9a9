"""`instance-weighting`: keep training on labeled source, each example weighted by how
target-like a domain classifier finds it, plus the target shots."""

import math

import torch
import torch.nn.functional as F

from tlbench import hookimpl
from tlbench.plugin.contracts import Phase

from tlbench_plugins.strategies.basic import FineTune
from tlbench.settings.train import EVAL_BATCH_SIZE

MAX_FIT_EXAMPLES = 20_000  # per domain, for fitting the domain classifier


@torch.no_grad()
def features_of(backbone, x, batch_size: int = EVAL_BATCH_SIZE) -> torch.Tensor:
    """Backbone features of every row of ``x`` (a tensor or host-resident tensor), in eval mode."""
    was_training = backbone.training
    backbone.eval()
    out = torch.cat([backbone(x[i : i + batch_size]).float() for i in range(0, len(x), batch_size)])
    backbone.train(was_training)
    return out


def domain_logits(source: torch.Tensor, target: torch.Tensor, l2: float, generator=None) -> torch.Tensor:
    """Fit an L2-regularised logistic regression telling target (1) from source (0) features;
    return its logit for every source row. Features are standardised on both domains together."""
    def sample(f):
        if len(f) <= MAX_FIT_EXAMPLES:
            return f
        return f[torch.randperm(len(f), generator=generator)[:MAX_FIT_EXAMPLES].to(f.device)]

    fit_s, fit_t = sample(source), sample(target)
    both = torch.cat([fit_s, fit_t])
    mean, std = both.mean(0), both.std(0).clamp_min(1e-6)
    x = (both - mean) / std
    y = torch.cat([torch.zeros(len(fit_s)), torch.ones(len(fit_t))]).to(x.device)
    # balance the two domains so the fitted odds are the density ratio up to n_s/n_t
    sample_weight = torch.where(y == 1, len(both) / (2 * len(fit_t)), len(both) / (2 * len(fit_s)))
    w = torch.zeros(x.shape[1], device=x.device, requires_grad=True)
    b = torch.zeros((), device=x.device, requires_grad=True)
    optimizer = torch.optim.LBFGS([w, b], max_iter=100, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = (F.binary_cross_entropy_with_logits(x @ w + b, y, reduction="none") * sample_weight).mean()
        loss = loss + 0.5 * l2 * (w**2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    with torch.no_grad():
        return ((source - mean) / std) @ w + b


def importance_weights(logits: torch.Tensor, clip: float) -> torch.Tensor:
    """Odds ``exp(logit)`` normalised to mean 1, capped at ``clip``, normalised to mean 1 again."""
    odds = torch.exp(logits.clamp(-30.0, 30.0))
    weights = odds / odds.mean()
    weights = weights.clamp(max=clip)
    return weights / weights.mean()


def effective_sample_size(weights: torch.Tensor) -> float:
    """Kish's effective number of examples of a weighted sample."""
    return float(weights.sum() ** 2 / (weights**2).sum())


class InstanceWeighting(FineTune):
    """Before training, a logistic-regression domain classifier on the source model's features
    scores every labeled source example; its target-vs-source odds (balanced classes, capped at
    ``clip`` times the mean) weight that example's cross-entropy for the whole run. Each step adds
    ``source_weight`` times the weighted source loss to the target shots' cross-entropy."""

    defaults = {"source_weight": 1.0, "clip": 10.0, "domain_l2": 0.1, "backbone_lr_scale": 1.0, "reset_head": False}
    option_ranges = {"source_weight": (0.0, 1000000.0), "clip": (1.0, 1000000.0), "domain_l2": (0.0, 1000000.0), "backbone_lr_scale": (0.0, 100.0)}
    needs_shared_labels = True  # source labels train the model's (target) head
    needs_target_unlabeled = True  # the domain classifier reads the target training inputs
    uses_source_labels = True

    def setup(self, model, ctx):
        super().setup(model, ctx)
        source = features_of(model.backbone, ctx.source_train.x)
        target = features_of(model.backbone, ctx.target_unlabeled)
        logits = domain_logits(source, target, self.hparams["domain_l2"], ctx.generator)
        self.weights = importance_weights(logits, self.hparams["clip"]).to(ctx.device)
        self.source_batches = 0
        self.weight_stats = {
            "weight_min": round(float(self.weights.min()), 4),
            "weight_max": round(float(self.weights.max()), 4),
            "effective_sample_size": round(effective_sample_size(self.weights), 1),
            "source_examples": len(self.weights),
        }
        ctx.log(
            f"instance-weighting: source weights min {self.weights.min():.3g} max {self.weights.max():.3g}, "
            f"effective sample size {self.weight_stats['effective_sample_size']:.0f} of {len(self.weights)}"
        )

    def summary(self):
        return {**self.weight_stats, "source_batches": self.source_batches}

    def phases(self, model, ctx):
        groups = [
            {"params": list(model.backbone.parameters()), "lr": ctx.lr * self.hparams["backbone_lr_scale"]},
            {"params": list(model.head.parameters()), "lr": ctx.lr},
        ]
        return [Phase("instance-weighting", groups, ctx.steps)]

    def source_loss(self, model, features, labels, index):
        self.source_batches += 1
        per_example = F.cross_entropy(model.head(features), labels, reduction="none")
        weights = self.weights[index.to(self.weights.device)]
        return self.hparams["source_weight"] * (weights * per_example).mean()


def _check_options(options: dict) -> None:
    from tlbench.plugin.errors import UserError

    if not options["clip"] >= 1 or not math.isfinite(options["clip"]):
        raise UserError(f"instance-weighting option `clip` = {options['clip']!r} must be >= 1 (a cap, in multiples of the mean weight)")
    if options["domain_l2"] < 0:
        raise UserError(f"instance-weighting option `domain_l2` = {options['domain_l2']!r} must be >= 0")


@hookimpl
def register_strategies(register):
    register("instance-weighting", InstanceWeighting, check_options=_check_options)
